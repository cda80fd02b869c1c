"""How fast kvha brings a dead host's VMs back, what KubeVirt alone does, and what the operator costs.

    .venv/bin/python bench/failover_bench.py                                  # everything, ~15 min
    .venv/bin/python bench/failover_bench.py --runs 1 --vms 10 --nodes 4 --skip-scale   # ~2 min

Prints figures; asserts nothing. Three parts, on the testbed (real control plane, kwok, simulated
KubeVirt and fence agent):

1. Recovery: one host of `--nodes` carrying `--vms` VMs loses power. The HAPolicy fences through
   the simulated medik8s fence agent (Remediation with a SelfNodeRemediationTemplate), so no human
   step is in the path; all VMs are one priority, `restart: {maxParallel: <vms>, tierOrdering:
   None}`, so nothing but kvha itself paces the restarts. Each run gets fresh nodes, namespace,
   policy and operator; all runs share one testbed. Timed by polling every 0.1 s (NodeFailovers
   from the API, VMIs from the simulator's watch cache): detection (power-off -> NodeFailover
   exists), fencing (-> status.fencedAt), kvha (-> the last old VMI replaced by a new one; also
   shown: -> the last old VMI marked Failed), KubeVirt + scheduler (-> the last new VMI Running).
   kvha's own timestamps do not serve: creationTimestamp and spec.detectedAt have 1 s resolution,
   and an entry's restartedAt is when its restart was planned, not done.
2. Baseline, same testbed, same staging, no operator: after `--baseline-wait` seconds, how many of
   the VMs run again (the simulator's ledger of real guests, and the API's view).
3. Scale (`--skip-scale` to leave out): a second testbed with `--scale-nodes` kwok nodes and
   `--scale-vms` VMs, slower liveness as in bench/testbed_bench.py; the operator starts once they
   all run. Its resident memory (VmRSS of it and its children), its CPU time, and the HTTP requests
   it logs at --verbose (`... "VERB /path HTTP/1.1" status`) while idle and during incidents of
   `--incident-sizes` VMs (one reserved host each). kopf's own traffic (watch streams, Events,
   finalizers) goes through aiohttp, which logs no request lines: it is not in the counts. The
   policy's unhealthy-node count is sampled next to the real Lease ages, to show cache lag.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kvha.settings import OperatorSettings
from kvha_testbed.build import ensure_built
from kvha_testbed.demo import _fencing_spec, step
from kvha_testbed.kube import LEASES, NAMESPACES, NODES, PODS, VMS
from kvha_testbed.kwok import node_manifest, node_ready
from kvha_testbed.objects import vm_manifest
from kvha_testbed.operator_process import OperatorProcess
from kvha_testbed.plane import PlaneConfig
from kvha_testbed.scenario import FAST_DETECTION, Scenario
from kvha_testbed.sim.context import Power, SimulatorConfig
from kvha_testbed.testbed import Testbed, TestbedConfig
from kvha_testbed.waiting import wait_for
from testbed_bench import _descendants, _rss_bytes

Obj = dict[str, Any]
POLL = 0.1
DEFAULTS = OperatorSettings()
# Fencing through the simulated fence agent: kvha creates a SelfNodeRemediation, the agent powers
# the host off and reports success; demo.py stages the template the same way.
REMEDIATION = argparse.Namespace(fencing="remediation")
RESERVED_TAINT = {"key": "kvha-bench/reserved", "value": "true", "effect": "NoSchedule"}
_REQUEST = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.1" (\d{3})')


def median(values: Sequence[float]) -> str:
    return f"{statistics.median(values):5.1f}s" if values else "   n/a"


def spread(values: Sequence[float]) -> str:
    return " / ".join(f"{v:.1f}" for v in values)


# ----------------------------------------------------------------------------- staging


def new_scene(bed: Testbed, slug: str) -> Scenario:
    """A scenario with its own namespace and node names (`<slug>-host-N`), as the pytest fixtures make."""
    return Scenario.standalone(bed, slug)


def vm_state(bed: Testbed, namespace: str) -> dict[str, Obj]:
    """VMIs of a namespace by name, from the simulator's watch cache (no API request)."""
    return {
        vmi["metadata"]["name"]: vmi
        for vmi in bed.sim.ctx.caches.vmis.items()
        if vmi["metadata"].get("namespace") == namespace
    }


def wait_running(bed: Testbed, namespace: str, names: Iterable[str], *, timeout: float) -> None:
    wanted = set(names)
    started = time.monotonic()
    last_report = started

    def count() -> int:
        vms = (vm for vm in bed.sim.ctx.caches.vms.items() if vm["metadata"].get("namespace") == namespace)
        return sum(
            vm["metadata"]["name"] in wanted and (vm.get("status") or {}).get("printableStatus") == "Running"
            for vm in vms
        )

    while (running := count()) < len(wanted):
        if time.monotonic() - last_report > 15:
            print(f"    ... {running}/{len(wanted)} VMs Running after {time.monotonic() - started:.0f}s", flush=True)
            last_report = time.monotonic()
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"only {running}/{len(wanted)} VMs of {namespace} Running after {timeout:.0f}s")
        time.sleep(0.5)


def stage_host_with_vms(scene: Scenario, *, vms: int, others: int) -> tuple[str, list[str], list[str]]:
    """One host alone gets every VM; then the survivors join (roomy enough for all of them)."""
    [victim] = scene.nodes(1, cpu=16, memory=f"{max(32, vms * 2)}Gi")
    names = [f"vm-{i:03d}" for i in range(vms)]
    for name in names:
        scene.vm(name, priority="High", cpu=1, memory="1Gi")
    wait_running(scene.bed, scene.namespace, names, timeout=300)
    survivors = scene.nodes(others, cpu=16, memory="32Gi")
    return victim, names, survivors


def tear_down(scene: Scenario, nodes: Iterable[str]) -> None:
    """Remove everything a run made, so the next run sees only its own objects."""
    scene.cleanup()
    client = scene.bed.client
    client.delete(NAMESPACES.path(name=scene.namespace))
    pods, _ = client.list(PODS.path(scene.namespace))
    for pod in pods:  # pods bound to the dead host would keep the namespace Terminating
        client.delete(PODS.path(scene.namespace, pod["metadata"]["name"]), grace_seconds=0)
    for name in nodes:
        client.delete(NODES.path(name=name))
        scene.bed.sim.power.set(name, Power.UP)
    try:
        wait_for(
            lambda: client.get_or_none(NAMESPACES.path(name=scene.namespace)) is None,
            what=f"namespace {scene.namespace} to be deleted",
            timeout=60,
            interval=0.5,
        )
    except AssertionError as error:
        print(f"    (cleanup still running: {error})", flush=True)


def really_running(scene: Scenario, names: Iterable[str], *, not_on: str) -> int:
    """VMs with a live guest somewhere other than `not_on`, by the simulator's ground truth."""
    return sum(
        any(i.node != not_on for i in scene.bed.ledger.live_instances(f"{scene.namespace}/{name}")) for name in names
    )


# ----------------------------------------------------------------------------- part 1: recovery


@dataclass
class Moments:
    """Wall-clock moments (time.time()) first seen by the 0.1 s poll."""

    power_off: float
    created: float | None = None
    fenced: float | None = None
    completed: float | None = None
    marked: dict[str, float] = field(default_factory=dict)
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
        return {
            "detection": self.created - self.power_off,
            "fencing": self.fenced - self.created,
            "kvha": replaced - self.fenced,
            "kvha_marked": marked - self.fenced,
            "first_replaced": min(self.replaced.values()) - self.fenced,
            "kubevirt": running - replaced,
            "total": running - self.power_off,
        }


def observe(scene: Scenario, moments: Moments, old_uids: dict[str, str], now: float) -> None:
    """One poll: the failover's progress from the API, the VMIs from the simulator's cache."""
    found = scene.failovers()
    if found:
        moments.failover = found[0]
        status = found[0].get("status") or {}
        moments.created = moments.created or now
        if status.get("fencedAt"):
            moments.fenced = moments.fenced or now
        if status.get("phase") == "Completed":
            moments.completed = moments.completed or now
    vmis = vm_state(scene.bed, scene.namespace)
    for name, old_uid in old_uids.items():
        vmi = vmis.get(name)
        new = vmi is not None and vmi["metadata"]["uid"] != old_uid
        if name not in moments.marked and (vmi is None or new or (vmi.get("status") or {}).get("phase") == "Failed"):
            moments.marked[name] = now
        if new and name not in moments.replaced:
            moments.replaced[name] = now
        if new and name not in moments.running and (vmi.get("status") or {}).get("phase") == "Running":
            moments.running[name] = now


def watch_incident(scene: Scenario, op: OperatorProcess, moments: Moments, old_uids: dict[str, str]) -> None:
    """Poll every 0.1 s until every VM runs again and the failover is Completed (or 240 s pass)."""
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
        if now - moments.power_off > 240:
            print("    gave up after 240 s", flush=True)
            return
        time.sleep(max(0.0, POLL - (time.time() - now)))


def recovery_run(bed: Testbed, index: int, args: argparse.Namespace) -> dict[str, float] | None:
    scene = new_scene(bed, f"fb-{os.getpid()}-{index}")
    print(f"  run {index}: {args.vms} VMs on one host, then {args.nodes - 1} more hosts", flush=True)
    victim, names, survivors = stage_host_with_vms(scene, vms=args.vms, others=args.nodes - 1)
    try:
        old_uids = {name: vmi["metadata"]["uid"] for name, vmi in vm_state(bed, scene.namespace).items()}
        scene.policy(
            fencing=_fencing_spec(REMEDIATION, scene), restart={"maxParallel": args.vms, "tierOrdering": "None"}
        )
        op = scene.operator().start()
        if index == 1:
            print(
                f"    operator: policy evaluated every {op.env['KVHA_POLICY_INTERVAL']}s, incidents driven every "
                f"{op.env['KVHA_FAILOVER_INTERVAL']}s (testbed's OperatorProcess; kvha's own defaults "
                f"{DEFAULTS.policy_interval:g}s / {DEFAULTS.failover_interval:g}s)",
                flush=True,
            )
        wait_for(
            lambda: scene.policy_status().get("protectedVms") == args.vms,
            what=f"the policy to protect {args.vms} VMs",
            timeout=60,
        )
        split_before = len(bed.ledger.split_brain_events())
        moments = Moments(power_off=time.time())
        bed.faults.power_off(victim)
        watch_incident(scene, op, moments, old_uids)
        phases = moments.phases(len(names))
        # kvha logs each launcher pod it force-deleted itself; the others were gone before it got to
        # them (the fence agent's NoExecute out-of-service taint lets Kubernetes' pod GC delete them).
        by_kvha = op.log_path.read_text(errors="replace").count(f"force-deleted pod {scene.namespace}/")
        print(f"    old launcher pods kvha deleted itself: {by_kvha} of {len(names)}", flush=True)
        back = really_running(scene, names, not_on=victim)
        split = len(bed.ledger.split_brain_events()) - split_before
        print_run(phases, moments, back=back, total=len(names), split=split)
        if phases is None:
            return None
        share, spacing = moments.operator_cpu_share(), moments.mark_spacing()
        return {
            **phases,
            "back": back,
            "split": split,
            "cpu": share or 0.0,
            "spacing": spacing or 0.0,
            "by_kvha": by_kvha,
        }
    finally:
        tear_down(scene, [victim, *survivors])


def print_run(phases: dict[str, float] | None, moments: Moments, *, back: int, total: int, split: int) -> None:
    if phases is None:
        print(f"    incomplete: {moments}", flush=True)
        return
    status = (moments.failover or {}).get("status") or {}
    stamps = [e.get("restartedAt") for e in status.get("vms", []) if e.get("restartedAt")]
    print(
        f"    detection {phases['detection']:.1f}s  fencing {phases['fencing']:.1f}s  "
        f"kvha {phases['kvha']:.2f}s (first replacement {phases['first_replaced']:.2f}s, last old VMI "
        f"marked Failed {phases['kvha_marked']:.2f}s)  KubeVirt+scheduler {phases['kubevirt']:.1f}s  "
        f"total {phases['total']:.1f}s",
        flush=True,
    )
    share, spacing = moments.operator_cpu_share(), moments.mark_spacing()
    if share is not None and spacing is not None:
        print(
            f"    while kvha acted: one old VMI marked Failed every {1000 * spacing:.0f} ms (median gap); "
            f"operator CPU {100 * share:.0f}% of a core",
            flush=True,
        )
    print(
        f"    NodeFailover {status.get('phase')}: {status.get('message')}; fencedAt {status.get('fencedAt')}, "
        f"restartedAt {min(stamps, default='-')}..{max(stamps, default='-')}; guests really running "
        f"elsewhere {back}/{total}; split-brain events {split}",
        flush=True,
    )


# ----------------------------------------------------------------------------- part 2: baseline


def baseline_run(bed: Testbed, args: argparse.Namespace) -> dict[str, int]:
    scene = new_scene(bed, f"fb-{os.getpid()}-baseline")
    print(
        f"  {args.vms} VMs on one host, then {args.nodes - 1} more hosts; no HAPolicy, no operator "
        f"(KubeVirt heartbeat timeout {scene.kubevirt_heartbeat_timeout:.0f}s as in real KubeVirt)",
        flush=True,
    )
    victim, names, survivors = stage_host_with_vms(scene, vms=args.vms, others=args.nodes - 1)
    try:
        bed.faults.power_off(victim)
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < args.baseline_wait:
            time.sleep(min(10.0, args.baseline_wait - elapsed))
            print(
                f"    t={time.monotonic() - started:4.0f}s  guests running again: "
                f"{really_running(scene, names, not_on=victim)}/{len(names)}",
                flush=True,
            )
        vms = [bed.sim.ctx.caches.vms.get(scene.namespace, name) or {} for name in names]
        vmis = vm_state(bed, scene.namespace)
        return {
            "really_running": really_running(scene, names, not_on=victim),
            "vmi_elsewhere": sum(
                (vmis.get(n) or {}).get("status", {}).get("nodeName") not in (None, victim) for n in names
            ),
            "claims_running": sum((vm.get("status") or {}).get("printableStatus") == "Running" for vm in vms),
            "vmi_on_dead_host": sum((vmis.get(n) or {}).get("status", {}).get("nodeName") == victim for n in names),
        }
    finally:
        tear_down(scene, [victim, *survivors])


# ----------------------------------------------------------------------------- part 3: scale


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_rss(pid: int) -> int:
    return sum(_rss_bytes(p) for p in _descendants({pid}))


class RssSampler:
    """Peak resident memory of a process tree, sampled every second in the background."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.peak = max(self.peak, tree_rss(self.pid))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


@dataclass
class Window:
    """Request lines the operator logged between two points of its log, and its CPU time meanwhile."""

    name: str
    seconds: float
    requests: list[tuple[str, str, str]]
    """(verb, path, status code) of each request line."""
    cpu: float

    def kinds(self, keep: Callable[[str, str, str], bool]) -> Counter[str]:
        return Counter(kind_of(*request) for request in self.requests if keep(*request))

    def count(self, keep: Callable[[str, str, str], bool]) -> int:
        return sum(1 for request in self.requests if keep(*request))


def kind_of(verb: str, path: str, code: str) -> str:
    """`PATCH /apis/g/v/namespaces/ns/things/name/status` 200 -> `PATCH things/status`; lists are LIST,
    and a status code is shown unless it is a success."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    resource = "/".join([rest[0], *rest[2:3]]) if rest else path
    verb = "LIST" if verb == "GET" and len(rest) == 1 else verb
    return f"{verb} {resource}" + ("" if code.startswith("2") else f" ({code})")


class RequestLog:
    def __init__(self, op: OperatorProcess) -> None:
        self.op = op

    def mark(self) -> tuple[int, float, float]:
        assert self.op.proc is not None
        assert self.op.proc.pid is not None
        return self.op.log_path.stat().st_size, time.monotonic(), cpu_seconds(self.op.proc.pid)

    def since(self, name: str, start: tuple[int, float, float]) -> Window:
        offset, began, cpu = start
        end = self.mark()
        with self.op.log_path.open("rb") as log:
            log.seek(offset)
            text = log.read(end[0] - offset).decode(errors="replace")
        requests = [(m.group(1), m.group(2), m.group(3)) for m in _REQUEST.finditer(text)]
        return Window(name=name, seconds=end[1] - began, requests=requests, cpu=end[2] - cpu)


def scale_testbed_config() -> TestbedConfig:
    # Same liveness as bench/testbed_bench.py's scale run: 100 nodes' heartbeats stay a small load.
    return TestbedConfig(
        plane=PlaneConfig(node_monitor_grace_period=20),
        simulator=SimulatorConfig(heartbeat_interval=10, heartbeat_timeout=60, node_recheck_interval=10, workers=12),
        lease_duration_seconds=20,
    )


def bulk(func: Callable[[int], object], count: int) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(func, range(count)))


def stage_victim(scene: Scenario, tag: str, count: int) -> tuple[str, list[str]]:
    """A host alone with `count` VMs, then reserved (NoSchedule) so the fleet does not land on it."""
    [host] = scene.nodes(1, cpu=64, memory="256Gi")
    names = [f"inc-{tag}-{i:03d}" for i in range(count)]
    bulk(lambda i: scene.vm(names[i], cpu=1, memory="1Gi"), count)
    wait_running(scene.bed, scene.namespace, names, timeout=300)
    scene.kube.patch(NODES.path(name=host), {"spec": {"taints": [RESERVED_TAINT]}})
    return host, names


def stage_fleet(scene: Scenario, *, nodes: int, vms: int, already: int) -> list[str]:
    client = scene.bed.client
    names = [f"{scene.label}-pool-{i:03d}" for i in range(nodes)]
    started = time.monotonic()
    bulk(
        lambda i: client.create(
            NODES.path(), node_manifest(names[i], cpu=64, memory="256Gi", pods=250, labels={"kvha-test": scene.label})
        ),
        nodes,
    )
    wait_for(
        lambda: (
            sum(
                node_ready(n) and (n["metadata"].get("labels") or {}).get("kubevirt.io/schedulable") == "true"
                for n in scene.bed.sim.ctx.caches.nodes.items()
            )
            >= nodes + already
        ),
        what=f"{nodes} nodes Ready and schedulable",
        timeout=300,
        interval=1,
    )
    print(f"    {nodes} nodes Ready in {time.monotonic() - started:.1f}s", flush=True)
    started = time.monotonic()
    vm_names = [f"vm-{i:04d}" for i in range(vms)]
    bulk(
        lambda i: client.create(
            VMS.path(scene.namespace), vm_manifest(vm_names[i], namespace=scene.namespace, cpu=1, memory="1Gi")
        ),
        vms,
    )
    print(f"    {vms} VMs created in {time.monotonic() - started:.1f}s", flush=True)
    wait_running(scene.bed, scene.namespace, vm_names, timeout=1200)
    print(f"    all Running {time.monotonic() - started:.1f}s after creation started", flush=True)
    return names


class PolicyWatch:
    """The HAPolicy's own view, sampled every second: how many watched nodes it calls unhealthy and
    whether its storm guard holds everything; next to it, the real age of the oldest Lease of a
    node that is up. A policy that calls live nodes unhealthy is reading a lagging cache."""

    def __init__(self, scene: Scenario) -> None:
        self.scene = scene
        self.samples: list[tuple[int, bool, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                status = self.scene.policy_status()
                oldest = oldest_live_lease(self.scene)
            except Exception:  # a slow apiserver must not end the sampling
                continue
            storm = any(
                c.get("type") == "StormGuardActive" and c.get("status") == "True"
                for c in status.get("conditions") or []
            )
            self.samples.append((int(status.get("unhealthyNodes") or 0), storm, oldest))

    def take(self) -> str:
        """Summary of the samples since the last call."""
        samples, self.samples = self.samples, []
        if not samples:
            return "policy status not sampled"
        unhealthy = [u for u, _, _ in samples]
        return (
            f"policy status, {len(samples)} samples: unhealthy nodes up to {max(unhealthy)} (median "
            f"{statistics.median(unhealthy):.0f}); storm guard active in {sum(1 for _, a, _ in samples if a)}; "
            f"real age of the oldest Lease of a live node up to {max(o for _, _, o in samples):.1f}s"
        )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def oldest_live_lease(scene: Scenario) -> float:
    """Seconds since the least recently renewed Lease of a node that is up was renewed."""
    leases, _ = scene.kube.list(LEASES.path("kube-node-lease"))
    now = time.time()
    ages = [
        now - datetime.fromisoformat(lease["spec"]["renewTime"].replace("Z", "+00:00")).timestamp()
        for lease in leases
        if lease["spec"].get("renewTime") and scene.bed.sim.power.up(lease["metadata"]["name"])
    ]
    return max(ages, default=0.0)


def describe_policy(scene: Scenario) -> str:
    status = scene.policy_status()
    conditions = "; ".join(
        f"{c['type']}={c['status']}"
        + (f" ({c.get('message', '')[:240]})" if c["type"] == "StormGuardActive" and c["status"] == "True" else "")
        for c in status.get("conditions") or []
    )
    return (
        f"watched {status.get('watchedNodes')} nodes, unhealthy {status.get('unhealthyNodes')}, protected "
        f"{status.get('protectedVms')} VMs, failover capacity {status.get('failoverCapacity')}; {conditions}"
    )


def incident(scene: Scenario, log: RequestLog, *, host: str, names: list[str], timeout: float) -> Window:
    mark = log.mark()
    off = time.monotonic()
    scene.bed.faults.power_off(host)

    def completed() -> Obj | None:
        mine = [f for f in scene.failovers() if f["spec"]["nodeName"] == host]
        return mine[0] if mine and (mine[0].get("status") or {}).get("phase") == "Completed" else None

    try:
        failover = wait_for(completed, what=f"the failover of {host} to complete", timeout=timeout, interval=POLL)
    except AssertionError:
        mine = [f.get("status") or {} for f in scene.failovers() if f["spec"]["nodeName"] == host]
        print(
            f"    NOT COMPLETED within {timeout:.0f}s: NodeFailover "
            f"{mine[0].get('phase', 'Detected') + ': ' + str(mine[0].get('message')) if mine else 'never opened'}"
            f"\n    policy: {describe_policy(scene)}",
            flush=True,
        )
        return log.since(f"incident, {len(names)} VMs (NOT COMPLETED)", mark)
    took = time.monotonic() - off
    window = log.since(f"incident, {len(names)} VMs", mark)
    print(
        f"    {host}: {failover['status']['message']} ({took:.1f}s after power-off); "
        f"{really_running(scene, names, not_on=host)}/{len(names)} guests really running elsewhere",
        flush=True,
    )
    return window


Keep = Callable[[str, str, str], bool]


def is_lease(_verb: str, path: str, _code: str) -> bool:
    return "/leases/" in path


def print_window(window: Window, *, vms: int = 0, mine: Keep | None = None) -> None:
    lease = window.count(is_lease)
    print(
        f"  {window.name:34s} {window.seconds:5.1f}s  {len(window.requests):4d} requests "
        f"({lease} leader lease, {len(window.requests) - lease} other)  operator CPU {window.cpu:4.1f}s "
        f"({100 * window.cpu / window.seconds:3.0f}% of a core)",
        flush=True,
    )
    indent = " " * 36
    if vms and mine is not None:
        own = window.count(mine)
        print(
            f"{indent}this incident's own: {own} = {own / vms:.2f} per VM moved: "
            + ", ".join(f"{k} x{n}" for k, n in window.kinds(mine).most_common()),
            flush=True,
        )
        others = window.kinds(lambda *r: not is_lease(*r) and not mine(*r))
    else:
        others = window.kinds(lambda *r: not is_lease(*r))
    if others:
        print(
            f"{indent}{'not this incident' if mine else 'besides the lease'}: "
            + ", ".join(f"{k} x{n}" for k, n in others.most_common()),
            flush=True,
        )


def start_operator(scene: Scenario, vms: int) -> OperatorProcess:
    started = time.monotonic()
    op = scene.operator().start(timeout=300)
    leader = time.monotonic() - started
    wait_for(
        lambda: scene.policy_status().get("protectedVms") == vms,
        what=f"the policy to protect {vms} VMs",
        timeout=600,
        interval=1,
    )
    assert op.proc is not None
    assert op.proc.pid is not None
    print(
        f"    leader after {leader:.1f}s; policy counts all {vms} VMs {time.monotonic() - started:.1f}s after "
        f"start; RSS then {tree_rss(op.proc.pid) / 2**20:.0f} MiB, CPU so far {cpu_seconds(op.proc.pid):.0f}s",
        flush=True,
    )
    print(
        f"    policy: {describe_policy(scene)}\n    real age of the oldest Lease of a live node now: "
        f"{oldest_live_lease(scene):.1f}s",
        flush=True,
    )
    return op


def idle_window(log: RequestLog, policy: PolicyWatch, *, name: str, seconds: float) -> Window:
    step(f"Idle window, {name}, {seconds:.0f}s")
    mark = log.mark()
    policy.take()
    time.sleep(seconds)
    window = log.since(name, mark)
    print_window(window)
    print(f"    {policy.take()}", flush=True)
    return window


def scale(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.incident_sizes.split(",")]
    with Testbed(ensure_built(), scale_testbed_config()) as bed:
        scene = new_scene(bed, f"fbs-{os.getpid()}")
        try:
            victims = []
            for tag, size in zip("abcdefgh", sizes, strict=False):
                victims.append(stage_victim(scene, tag, size))
                print(f"    {victims[-1][0]}: {size} VMs Running, reserved", flush=True)
            stage_fleet(scene, nodes=args.scale_nodes - len(sizes), vms=args.scale_vms - sum(sizes), already=len(sizes))
            # A short storm-guard cooldown (default 5m): at this scale a storm can be declared while the
            # operator's caches lag (see the policy samples), and 5 minutes of cooldown would hide the incidents.
            scene.policy(
                fencing=_fencing_spec(REMEDIATION, scene),
                restart={"maxParallel": max(sizes), "tierOrdering": "None"},
                stormGuard={"cooldown": args.storm_cooldown},
                detection={**FAST_DETECTION, "leaseStaleAfter": args.scale_lease_stale_after},
            )
            print(
                f"    policy: as part 1, restart maxParallel {max(sizes)}, stormGuard.cooldown "
                f"{args.storm_cooldown} (default 5m), leaseStaleAfter {args.scale_lease_stale_after}",
                flush=True,
            )
            step(f"Starting the operator with {args.scale_nodes} nodes and {args.scale_vms} VMs in the cluster")
            op = start_operator(scene, args.scale_vms)
            assert op.proc is not None
            assert op.proc.pid is not None
            sampler, policy, log = RssSampler(op.proc.pid), PolicyWatch(scene), RequestLog(op)
            time.sleep(5)  # let the first evaluations settle
            idle_window(log, policy, name="no incident", seconds=args.idle)
            idle_rss = tree_rss(op.proc.pid)
            incidents: list[tuple[Window, int, Keep]] = []
            for host, names in victims:
                step(f"Incident: {host} ({len(names)} VMs) loses power")
                window = incident(scene, log, host=host, names=names, timeout=args.incident_timeout)
                incidents.append((window, len(names), _mine(host, names)))
                print_window(window, vms=len(names), mine=incidents[-1][2])
                print(f"    {policy.take()}", flush=True)
                idle_window(log, policy, name=f"{host} dead", seconds=args.idle)
            final_rss, peak = tree_rss(op.proc.pid), sampler.stop()
            policy.stop()
            step(f"Operator cost with {args.scale_nodes} nodes, {args.scale_vms} VMs (target RSS < 200 MiB)")
            print(
                f"  RSS idle {idle_rss / 2**20:.0f} MiB, after the incidents {final_rss / 2**20:.0f} MiB, "
                f"peak {peak / 2**20:.0f} MiB (sampled every 1 s, operator and its children)"
            )
            print_proportionality(incidents)
        finally:
            scene.cleanup()


def print_proportionality(incidents: list[tuple[Window, int, Keep]]) -> None:
    done = [(w.count(mine), vms) for w, vms, mine in incidents if "NOT COMPLETED" not in w.name]
    for requests, vms in done:
        print(f"  incident of {vms} VMs: {requests} requests of its own, {requests / vms:.2f} per VM moved")
    if len(done) >= 2 and done[-1][1] != done[0][1]:
        (r1, k1), (r2, k2) = done[0], done[-1]
        marginal = (r2 - r1) / (k2 - k1)
        print(
            f"  marginal cost: ({r2} - {r1}) / ({k2} - {k1}) = {marginal:.2f} requests per extra VM; "
            f"fixed part {r1 - marginal * k1:.0f} per incident",
            flush=True,
        )


def _mine(host: str, names: Sequence[str]) -> Keep:
    """A request belongs to an incident when its path names the host (NodeFailover, remediation) or
    one of the host's VMs (VMI, launcher pod), or when it opens the incident (creating the
    NodeFailover and the remediation, reading the template: one incident opens per window)."""
    prefix = names[0].rsplit("-", 1)[0] + "-" if names else host

    def mine(verb: str, path: str, code: str) -> bool:
        if host in path or f"/{prefix}" in path or f"virt-launcher-{prefix}" in path:
            return True
        opening = verb == "POST" and path.endswith(("/nodefailovers", "/selfnoderemediations"))
        return code.startswith("2") and (opening or "/selfnoderemediationtemplates/" in path)

    return mine


# ----------------------------------------------------------------------------- main


def recovery(args: argparse.Namespace) -> None:
    with Testbed(ensure_built()) as bed:
        plane = bed.config.plane
        conditions = ", ".join(
            f"{c['type']}={c['status']} for {c['duration']}" for c in FAST_DETECTION["unhealthyConditions"]
        )
        print(
            f"  detection: controller-manager node-monitor grace {plane.node_monitor_grace_period}s "
            f"(kwok lease {bed.config.lease_duration_seconds}s, renewed every "
            f"{bed.config.lease_duration_seconds / 4:.0f}s), then kvha: {conditions}; lease stale after "
            f"{FAST_DETECTION['leaseStaleAfter']}",
            flush=True,
        )
        print(
            f"  kvha: fencing Remediation (SelfNodeRemediationTemplate, simulated fence agent delay "
            f"{bed.sim.ctx.config.fence_delay:.0f}s); restart maxParallel {args.vms}, tierOrdering None, "
            "all VMs priority High",
            flush=True,
        )
        step(f"Part 1: recovery of {args.vms} VMs, {args.runs} runs")
        results = [recovery_run(bed, i + 1, args) for i in range(args.runs)]
        baseline = None
        if args.baseline_wait > 0:
            step(f"Part 2: baseline without kvha, {args.baseline_wait:.0f}s after the power-off")
            baseline = baseline_run(bed, args)
    summary(args, [r for r in results if r], baseline, grace=plane.node_monitor_grace_period)


def summary(
    args: argparse.Namespace, results: list[dict[str, float]], baseline: dict[str, int] | None, *, grace: int
) -> None:
    step(
        f"Recovery, {args.vms} VMs of 1 dead host in {args.nodes} hosts: median of {len(results)} "
        f"complete runs of {args.runs}"
    )

    def row(label: str, key: str, target: str = "") -> None:
        values = [r[key] for r in results]
        print(f"  {label:48s} {median(values)}   ({spread(values)}){target}")

    threshold = 2.0  # Ready=Unknown for 2s, see FAST_DETECTION
    row(
        "detection: power-off -> NodeFailover",
        "detection",
        f"   [grace {grace}s + threshold {threshold:.0f}s + policy tick]",
    )
    row("fencing: NodeFailover -> fencedAt", "fencing")
    row("kvha: fencedAt -> last replacement VMI created", "kvha", "   [target < 2s]")
    row("  of which: fencedAt -> last old VMI marked Failed", "kvha_marked")
    row("  fencedAt -> first replacement VMI created", "first_replaced")
    row("KubeVirt + scheduler: -> last new VMI Running", "kubevirt")
    row(
        "total: power-off -> last VM Running",
        "total",
        f"   [target <= {grace}s + {threshold:.0f}s + 15s = {grace + threshold + 15:.0f}s]",
    )
    print("  kvha's part in detail:")
    print(
        f"  {'  old launcher pods it deleted itself':48s} {' / '.join(str(int(r['by_kvha'])) for r in results)}"
        f" of {args.vms}"
    )
    spacing = [1000 * r["spacing"] for r in results]
    cpu = [100 * r["cpu"] for r in results]
    if results:
        print(
            f"  {'  median gap between two old VMIs marked Failed':48s} {statistics.median(spacing):5.0f}ms  "
            f"({' / '.join(f'{v:.0f}' for v in spacing)})"
        )
        print(
            f"  {'  operator CPU while they were marked':48s} {statistics.median(cpu):5.0f}%   "
            f"({' / '.join(f'{v:.0f}' for v in cpu)}) of a core"
        )
    if results and baseline is not None:
        total = statistics.median(r["total"] for r in results)
        back = min(int(r["back"]) for r in results)
        split = sum(int(r["split"]) for r in results)
        with_kvha = (f"{back}/{args.vms} after {total:.1f}s", f"{back}/{args.vms}")
        alone = (
            f"{baseline['really_running']}/{args.vms} after {args.baseline_wait:.0f}s",
            f"{baseline['vmi_elsewhere']}/{args.vms}",
        )
        print(f"\n  {'':30s} {'with kvha':>22s}   {'KubeVirt alone (no operator)':>30s}")
        for label, ours, theirs in zip(
            ("guests running again", "VMIs placed on another host"), with_kvha, alone, strict=True
        ):
            print(f"  {label:30s} {ours:>22s}   {theirs:>30s}")
        print(f"  with kvha: fewest guests running again in a run {back}, split-brain events in all runs {split}")
        print(
            f"  KubeVirt alone: {baseline['vmi_on_dead_host']} VMIs still on the dead host; "
            f"{baseline['claims_running']} VMs still report printableStatus Running"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="recovery runs (median reported; default 3)")
    parser.add_argument("--vms", type=int, default=50, help="VMs on the host that fails (default 50)")
    parser.add_argument("--nodes", type=int, default=10, help="hosts in the recovery cluster (default 10)")
    parser.add_argument("--baseline-wait", type=float, default=60, help="seconds to watch without kvha; 0 skips")
    parser.add_argument("--skip-scale", action="store_true", help="leave out part 3 (memory and requests)")
    parser.add_argument("--scale-nodes", type=int, default=100, help="kwok nodes in part 3 (default 100)")
    parser.add_argument("--scale-vms", type=int, default=2000, help="VMs in part 3 (default 2000)")
    parser.add_argument("--incident-sizes", default="10,40", help="VMs on each failing host in part 3")
    parser.add_argument("--idle", type=float, default=30, help="idle window in part 3, seconds (default 30)")
    parser.add_argument(
        "--scale-lease-stale-after",
        default=FAST_DETECTION["leaseStaleAfter"],
        help="part 3: the policy's detection.leaseStaleAfter (default as part 1)",
    )
    parser.add_argument("--storm-cooldown", default="30s", help="part 3: the policy's stormGuard.cooldown")
    parser.add_argument(
        "--incident-timeout",
        type=float,
        default=120,
        help="part 3: seconds from power-off to a Completed failover before giving up (default 120)",
    )
    args = parser.parse_args()
    started = time.monotonic()
    print(f"load before: {Path('/proc/loadavg').read_text().strip()} ({os.cpu_count()} CPUs)", flush=True)
    if args.runs > 0:
        recovery(args)
    if not args.skip_scale:
        step(f"Part 3: operator cost with {args.scale_nodes} kwok nodes and {args.scale_vms} VMs")
        scale(args)
    print(
        f"\nload after: {Path('/proc/loadavg').read_text().strip()}; bench took "
        f"{(time.monotonic() - started) / 60:.1f} min",
        flush=True,
    )


if __name__ == "__main__":
    main()
