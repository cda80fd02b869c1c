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
import os
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from incident_timing import POLL, Moments, median, really_running, spread, watch_incident
from kvha.settings import OperatorSettings
from kvha_testbed.build import ensure_built
from kvha_testbed.demo import _fencing_spec, step
from kvha_testbed.estate import scale_testbed_config, stage_fleet, stage_victim, vm_state, wait_running
from kvha_testbed.kube import NAMESPACES, NODES, PODS
from kvha_testbed.operator_process import OperatorProcess
from kvha_testbed.policy_watch import PolicyWatch, describe_policy, oldest_live_lease
from kvha_testbed.scenario import FAST_DETECTION, Scenario
from kvha_testbed.sim.context import Power
from kvha_testbed.testbed import Testbed
from kvha_testbed.waiting import wait_for
from proc_stats import RssSampler, cpu_seconds, tree_rss

Obj = dict[str, object]
DEFAULTS = OperatorSettings()
# Fencing through the simulated fence agent: kvha creates a SelfNodeRemediation, the agent powers
# the host off and reports success; demo.py stages the template the same way.
REMEDIATION = argparse.Namespace(fencing="remediation")
_REQUEST = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.1" (\d{3})')


# ----------------------------------------------------------------------------- staging


def new_scene(bed: Testbed, slug: str) -> Scenario:
    """A scenario with its own namespace and node names (`<slug>-host-N`), as the pytest fixtures make."""
    return Scenario.standalone(bed, slug)


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


# ----------------------------------------------------------------------------- part 1: recovery


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
                f"    operator: policy evaluated at most every {op.env['KVHA_POLICY_INTERVAL']}s, incidents stepped at "
                f"most every {op.env['KVHA_FAILOVER_INTERVAL']}s, each when something it reads changed or its "
                f"recheck is due (testbed's OperatorProcess; kvha's own defaults "
                f"{DEFAULTS.policy_interval:g}s / {DEFAULTS.failover_interval:g}s)",
                flush=True,
            )
        wait_for(
            lambda: scene.policy_status().get("protectedVms") == args.vms,
            what=f"the policy to protect {args.vms} VMs",
            timeout=60,
        )
        split_before = len(bed.ledger.split_brain_events())
        moments = Moments(power_off=time.time(), host=victim)
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
            sampler, policy, log = RssSampler(op.proc.pid), PolicyWatch(scene).start(), RequestLog(op)
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
