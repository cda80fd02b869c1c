"""When each step of one incident happened, seen from outside the operator.

A host loses power; a 0.1 s poll records when its NodeFailover appears, when fencing is confirmed,
when each old VMI is marked Failed (or gone) and replaced, and when each new VMI runs. kvha's own
timestamps do not serve: creationTimestamp and spec.detectedAt have 1 s resolution, and an entry's
restartedAt is when its restart was planned, not done.
"""

from __future__ import annotations

import itertools
import json
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kvha_testbed.operator_process import OperatorProcess
from kvha_testbed.scenario import Scenario
from proc_stats import cpu_seconds

Obj = dict[str, Any]
POLL = 0.1


def median(values: Sequence[float]) -> str:
    return f"{statistics.median(values):5.1f}s" if values else "   n/a"


def spread(values: Sequence[float]) -> str:
    return " / ".join(f"{v:.1f}" for v in values)


def really_running(scene: Scenario, names: Iterable[str], *, not_on: str) -> int:
    """VMs with a live guest somewhere other than `not_on`, by the simulator's ground truth."""
    return sum(
        any(i.node != not_on for i in scene.bed.ledger.live_instances(f"{scene.namespace}/{name}")) for name in names
    )


@dataclass
class Moments:
    """Wall-clock moments (time.time()) first seen by the 0.1 s poll."""

    power_off: float
    host: str
    created: float | None = None
    fenced: float | None = None
    completed: float | None = None
    marked: dict[str, float] = field(default_factory=dict)
    deleted: dict[str, float] = field(default_factory=dict)
    """Stuck launcher pod -> when the API server completed its last successful DELETE, kvha's force
    delete (audit log; see `launcher_deletions`)."""
    replaced: dict[str, float] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=dict)
    failover: Obj | None = None
    # (wall time, operator CPU seconds) when fencing was first seen confirmed and when the last
    # old VMI was first seen marked Failed: how busy the operator was while it acted.
    cpu_fenced: tuple[float, float] | None = None
    cpu_marked: tuple[float, float] | None = None

    def operator_cpu_share(self) -> float | None:
        if self.cpu_fenced is None or self.cpu_marked is None or self.cpu_marked[0] <= self.cpu_fenced[0]:
            return None
        return (self.cpu_marked[1] - self.cpu_fenced[1]) / (self.cpu_marked[0] - self.cpu_fenced[0])

    def mark_spacing(self) -> float | None:
        """Median time between two consecutive old VMIs being marked Failed."""
        times = sorted(self.marked.values())
        gaps = [b - a for a, b in itertools.pairwise(times)]
        return statistics.median(gaps) if gaps else None

    def phases(self, count: int) -> dict[str, float] | None:
        if None in (self.created, self.fenced) or min(map(len, (self.marked, self.replaced, self.running))) < count:
            return None
        assert self.created is not None
        assert self.fenced is not None
        marked, replaced, running = max(self.marked.values()), max(self.replaced.values()), max(self.running.values())
        # From fencing's confirmedAt (kvha's clock, which is this machine's, to the microsecond):
        # the 0.1 s poll sees it later, by as much as a busy machine delays the poll.
        confirmed = (self.failover or {}).get("status", {}).get("fencing", {}).get("confirmedAt")
        fenced = datetime.fromisoformat(confirmed.replace("Z", "+00:00")).timestamp() if confirmed else self.fenced
        deleted = {"kvha_deleted": max(self.deleted.values()) - fenced} if self.deleted else {}
        return {
            **deleted,
            "detection": self.created - self.power_off,
            "fencing": self.fenced - self.created,
            "kvha": replaced - self.fenced,
            "kvha_marked": marked - self.fenced,
            "first_replaced": min(self.replaced.values()) - self.fenced,
            "kubevirt": running - replaced,
            "total": running - self.power_off,
        }


def stuck_launchers(scene: Scenario, host: str) -> set[str]:
    """The virt-launcher pods of the scenario's namespace bound to `host`, from the simulator's cache."""
    return {
        pod["metadata"]["name"]
        for pod in scene.bed.sim.ctx.caches.pods.items()
        if pod["metadata"].get("namespace") == scene.namespace
        and (pod.get("spec") or {}).get("nodeName") == host
        and (pod["metadata"].get("labels") or {}).get("kubevirt.io") == "virt-launcher"
    }


def launcher_deletions(scene: Scenario, names: set[str]) -> dict[str, float]:
    """When the API server completed each DELETE of these pods, from its audit log (the API server
    runs on this machine, so its clock is ours): kvha's own part ends there, before virt-controller
    (simulated or real) notices that the pod is gone. Empty unless every one of them was deleted."""
    found: dict[str, float] = {}
    for line in scene.bed.control_plane.audit_log_path.read_text().splitlines():
        if '"pods"' not in line or '"delete"' not in line:
            continue  # most of the log: skip it without parsing
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        if (
            event.get("verb") == "delete"
            and ref.get("resource") == "pods"
            and ref.get("namespace") == scene.namespace
            and ref.get("name") in names
            and (event.get("responseStatus") or {}).get("code", 200) < 300
        ):
            done = datetime.fromisoformat(event["stageTimestamp"].replace("Z", "+00:00")).timestamp()
            # The last successful one: the taint manager's graceful eviction of a pod on a dead
            # node may come first (the pod stays, its kubelet never confirms); kvha's force delete
            # removes it, and any later DELETE finds nothing (404).
            found[ref["name"]] = max(found.get(ref["name"], done), done)
    return found if len(found) == len(names) else {}


def observe(scene: Scenario, moments: Moments, old_uids: dict[str, str], now: float) -> None:
    """One poll: the failover's progress from the API, the VMIs from the simulator's cache."""
    found = [f for f in scene.failovers() if f["spec"]["nodeName"] == moments.host]
    if found:
        moments.failover = found[0]
        status = found[0].get("status") or {}
        moments.created = moments.created or now
        if status.get("fencedAt"):
            moments.fenced = moments.fenced or now
        if status.get("phase") == "Completed":
            moments.completed = moments.completed or now
    # Only the incident's VMIs, by name: scanning all 2,000 ten times a second took the GIL from
    # the simulated KubeVirt running in this same process.
    vmis = scene.bed.sim.ctx.caches.vmis
    for name, old_uid in old_uids.items():
        vmi = vmis.get(scene.namespace, name)
        new = vmi is not None and vmi["metadata"]["uid"] != old_uid
        if name not in moments.marked and (vmi is None or new or (vmi.get("status") or {}).get("phase") == "Failed"):
            moments.marked[name] = now
        if new and name not in moments.replaced:
            moments.replaced[name] = now
        if (
            new
            and vmi is not None
            and name not in moments.running
            and (vmi.get("status") or {}).get("phase") == "Running"
        ):
            moments.running[name] = now


def watch_incident(
    scene: Scenario, op: OperatorProcess, moments: Moments, old_uids: dict[str, str], *, give_up: float = 240
) -> None:
    """Poll every 0.1 s until every VM runs again and the failover is Completed (or `give_up` s pass)."""
    assert op.proc is not None
    assert op.proc.pid is not None
    pid, count = op.proc.pid, len(old_uids)
    shown, last_shown = "", 0.0
    while len(moments.running) < count or moments.completed is None:
        now = time.time()
        observe(scene, moments, old_uids, now)
        if moments.fenced and moments.cpu_fenced is None:
            moments.cpu_fenced = (now, cpu_seconds(pid))
        if len(moments.marked) == count and moments.cpu_marked is None:
            moments.cpu_marked = (now, cpu_seconds(pid))
        stage = (
            "running"
            if len(moments.running) == count
            else "replaced"
            if len(moments.replaced) == count
            else "fenced"
            if moments.fenced
            else "detected"
            if moments.created
            else "silent"
        )
        if stage != shown or now - last_shown >= 1.0:
            print(
                f"    t={now - moments.power_off:5.1f}s  {stage:8s}  old VMIs marked Failed {len(moments.marked)}, "
                f"replaced {len(moments.replaced)}, running {len(moments.running)} of {count}",
                flush=True,
            )
            shown, last_shown = stage, now
        if now - moments.power_off > give_up:
            print(f"    gave up after {give_up:.0f} s", flush=True)
            return
        time.sleep(max(0.0, POLL - (time.time() - now)))
