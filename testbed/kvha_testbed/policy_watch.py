"""The HAPolicy's view of its nodes next to the testbed's truth, sampled in the background.

An operator whose caches lag calls live nodes unhealthy (its view of "silent" is its own lag),
declares storms that are not there, or opens incidents for nodes that are up. Issue 15's
acceptance checks are exactly that comparison, made throughout a start or a takeover: the benchmarks
and the integration tests both sample with this one class.

The truth is the simulator's power switch: a node counts as really unhealthy while it is not
powered up. Revive nodes only after sampling stops: a revived node may rightly stay unhealthy in
the policy's view until its `healthyDelay` has passed.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kvha_testbed.kube import LEASES
from kvha_testbed.scenario import FAST_DETECTION, Scenario
from kvha_testbed.testbed import Testbed

Obj = dict[str, Any]
COND_STORM = "StormGuardActive"


@dataclass(frozen=True)
class PolicySample:
    at: float
    """time.time() of the sample."""
    unhealthy: int
    """The policy's `status.unhealthyNodes`."""
    watched: int
    """The policy's `status.watchedNodes`."""
    really_unhealthy: int
    """The scenario's nodes not powered up at the time of the sample."""
    storm: bool
    """A StormGuardActive=True condition, or a recorded `stormEndedAt`."""
    oldest_live_lease: float
    """Real age in seconds of the least recently renewed Lease of a node that is up."""


@dataclass
class PolicyWatch:
    """Samples one scenario's policy every `interval` seconds until `stop()`."""

    scene: Scenario
    interval: float = 1.0
    samples: list[PolicySample] = field(default_factory=list)
    failovers_of_live_nodes: dict[str, str] = field(default_factory=dict)
    """NodeFailover name -> node, for each one first seen while its node was up."""
    errors: int = 0
    _seen_failovers: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> PolicyWatch:
        self._thread = threading.Thread(target=self._run, name="policy-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> PolicyWatch:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:  # a slow apiserver must not end the sampling; counted, not hidden
                self.errors += 1

    def sample(self) -> PolicySample:
        # Failovers first, status last: a node powered off between the reads can only make the
        # truth look worse than the policy's view, never better.
        self._check_failovers()
        status = self.scene.policy_status()
        power, names = self.scene.bed.sim.power, self.node_names()
        really = sum(not power.up(name) for name in names)
        storm = bool(status.get("stormEndedAt")) or any(
            c.get("type") == COND_STORM and c.get("status") == "True" for c in status.get("conditions") or []
        )
        sample = PolicySample(
            at=time.time(),
            unhealthy=int(status.get("unhealthyNodes") or 0),
            watched=int(status.get("watchedNodes") or 0),
            really_unhealthy=really,
            storm=storm,
            oldest_live_lease=oldest_live_lease(self.scene, nodes=names),
        )
        self.samples.append(sample)
        return sample

    def node_names(self) -> list[str]:
        """The nodes the scenario's policy selects (by the scenario's label), from the simulator's cache."""
        return [
            node["metadata"]["name"]
            for node in self.scene.bed.sim.ctx.caches.nodes.items()
            if (node["metadata"].get("labels") or {}).get("kvha-test") == self.scene.label
        ]

    def _check_failovers(self) -> None:
        power = self.scene.bed.sim.power
        for failover in self.scene.failovers():
            name, node = failover["metadata"]["name"], failover["spec"]["nodeName"]
            if name not in self._seen_failovers:
                self._seen_failovers.add(name)
                if power.up(node):
                    self.failovers_of_live_nodes[name] = node

    def since(self, started: float) -> list[PolicySample]:
        return [s for s in self.samples if s.at >= started]

    def overcounts(self, started: float = 0.0) -> list[PolicySample]:
        """Samples in which the policy counted more nodes unhealthy than were."""
        return [s for s in self.since(started) if s.unhealthy > s.really_unhealthy]

    def storms(self, started: float = 0.0) -> list[PolicySample]:
        return [s for s in self.since(started) if s.storm]

    def summary(self, started: float = 0.0) -> str:
        samples = self.since(started)
        if not samples:
            return "policy status not sampled"
        unhealthy = [s.unhealthy for s in samples]
        return (
            f"policy status, {len(samples)} samples: unhealthy nodes up to {max(unhealthy)} (median "
            f"{statistics.median(unhealthy):.0f}; really unhealthy up to {max(s.really_unhealthy for s in samples)}); "
            f"storm in {len(self.storms(started))}; real age of the oldest Lease of a live node up to "
            f"{max(s.oldest_live_lease for s in samples):.1f}s"
        )

    def take(self) -> str:
        """Summary of the samples since the last call (the samples are dropped)."""
        text = self.summary()
        self.samples = []
        return text


def oldest_live_lease(scene: Scenario, *, nodes: Collection[str] | None = None) -> float:
    """Seconds since the least recently renewed Lease of a node that is up (one of `nodes`, if
    given) was renewed."""
    leases, _ = scene.kube.list(LEASES.path("kube-node-lease"))
    now = time.time()
    ages = [
        now - datetime.fromisoformat(lease["spec"]["renewTime"].replace("Z", "+00:00")).timestamp()
        for lease in leases
        if lease["spec"].get("renewTime")
        and scene.bed.sim.power.up(lease["metadata"]["name"])
        and (nodes is None or lease["metadata"]["name"] in nodes)
    ]
    return max(ages, default=0.0)


def describe_policy(scene: Scenario) -> str:
    status = scene.policy_status()
    conditions = "; ".join(
        f"{c['type']}={c['status']}"
        + (f" ({c.get('message', '')[:240]})" if c["type"] == COND_STORM and c["status"] == "True" else "")
        for c in status.get("conditions") or []
    )
    return (
        f"watched {status.get('watchedNodes')} nodes, unhealthy {status.get('unhealthyNodes')}, protected "
        f"{status.get('protectedVms')} VMs, failover capacity {status.get('failoverCapacity')}; {conditions}"
    )


def detection_threshold(bed: Testbed, detection: Obj = FAST_DETECTION) -> float:
    """The earliest kvha may call a powered-off node unhealthy under `detection`: its Lease stale
    for leaseStaleAfter, or Ready=Unknown (after the node-monitor grace) held for the condition's
    duration. Issue 15's bound for a host's VMs to run again is this plus 15 s."""
    lease_stale = seconds(str(detection["leaseStaleAfter"]))
    ready_unknown = min(seconds(str(c["duration"])) for c in detection["unhealthyConditions"] if c["type"] == "Ready")
    return min(lease_stale, bed.config.plane.node_monitor_grace_period + ready_unknown)


def seconds(duration: str) -> float:
    """'20s', '2m', '500ms' in seconds (the forms the scenarios' policies use). Not kvha's own
    parser: the testbed judges the operator and imports nothing of it."""
    for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if duration.endswith(suffix):
            return float(duration[: -len(suffix)]) * factor
    raise ValueError(f"not a duration: {duration!r}")
