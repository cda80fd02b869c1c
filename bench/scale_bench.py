"""Issue 11's scale table and issue 15's acceptance checks: the operator at `--nodes` / `--vms`.

    .venv/bin/python bench/scale_bench.py                                   # 100 nodes, 2,000 VMs
    .venv/bin/python bench/scale_bench.py --nodes 20 --vms 200 --runs 1 \\
        --host-vms 20 --kvha-vms 10                                          # a few minutes

One testbed (bench/fleet.py's scale configuration: kwok Leases renewed every 5 s, node-monitor
grace 20 s) holds one HAPolicy over the whole fleet, with fencing through the simulated fence agent
(Remediation) and the storm guard at its defaults. Two victim hosts per run are staged first (one of
`--host-vms`, one of `--kvha-vms` VMs), reserved, then the fleet. Each run then:

1. fresh start: two replicas as the chart's pod runs them (`python -m kvha run`, kvha's own
   intervals, no --verbose, `--lease-seconds`); timed from the first replica's launch to its
   /readyz answering 200 (caches synced) and to its first full policy evaluation (the policy's
   generation is bumped before the start; `status.observedGeneration` reaching it is that evaluation);
2. `--after-ready` s after the leader became ready, the first victim loses power: detection,
   fencing, kvha's part and KubeVirt's part until its last VM runs (bench/incident_timing.py; kvha's
   part ends with the API server's audit record of its last launcher pod DELETE, before
   virt-controller has noticed any of them);
3. steady state over `--steady` s: CPU and RSS of the leader and the standby from /proc, and the
   testbed's own processes (this Python process runs the simulated virt-handler) shown apart;
4. takeover: the leader is SIGKILLed and the generation bumped again; the standby's leadership
   (`kvha_leader`), readiness and first evaluation are timed from the kill; `--after-ready` s after
   it became ready the second victim loses power (kvha's own part for `--kvha-vms` VMs).

Throughout, kvha_testbed.policy_watch samples the policy's `unhealthyNodes` next to the real number
of powered-off nodes, storms and NodeFailovers of live nodes: issue 15's checks, PASS/FAIL per phase.
Dead hosts stay off until the end (a revived node may rightly count as unhealthy for a while).

The watch-event lag rows read the operator's histogram (`kvha_lease_event_lag_seconds`, or whatever
`--lag-metric` names): its p99 bucket bound over the leader's whole life, and over the steady window
alone; without the metric they print "n/a (metric missing)".
Prints figures and PASS/FAIL; exits 0 either way.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from incident_timing import Moments, launcher_deletions, really_running, stuck_launchers, watch_incident
from kvha_testbed.build import ensure_built
from kvha_testbed.demo import step
from kvha_testbed.estate import scale_testbed_config, stage_fleet, stage_victim, vm_state
from kvha_testbed.operator_process import OperatorProcess
from kvha_testbed.policy_watch import PolicyWatch, describe_policy, detection_threshold
from kvha_testbed.scenario import FAST_DETECTION, HAPOLICIES, Scenario
from kvha_testbed.testbed import Testbed
from proc_stats import RssSampler, testbed_cpu, testbed_rss, tree_cpu, tree_rss

MiB = 2**20
POLL = 0.2
_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)$")


# ----------------------------------------------------------------------------- machine


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat: what every process,
    other agents' included, has used."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    ticks = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


# ----------------------------------------------------------------------------- operator probes


def pid_of(op: OperatorProcess) -> int:
    assert op.proc is not None
    assert op.proc.pid is not None
    return op.proc.pid


def leads(op: OperatorProcess) -> bool:
    try:
        return op.metric("kvha_leader") == 1.0
    except OSError:
        return False


def metric_samples(op: OperatorProcess, contains: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples of every kvha_ metric whose name contains `contains`, by name."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in op.metrics_text().splitlines():
        match = _SAMPLE.match(line)
        if match and match.group(1).startswith("kvha_") and contains in match.group(1):
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
            found.setdefault(match.group(1), []).append((labels, float(match.group(4))))
    return found


def histogram_quantile(buckets: Sequence[tuple[dict[str, str], float]], quantile: float) -> float | None:
    """The upper bound of the bucket the quantile falls in, over all label sets (Prometheus'
    histogram_quantile without interpolation)."""
    by_bound: dict[float, float] = {}
    for labels, count in buckets:
        bound = float(labels.get("le", "nan"))
        by_bound[bound] = by_bound.get(bound, 0.0) + count
    total = by_bound.get(math.inf, 0.0)
    if total <= 0:
        return None
    return next((b for b in sorted(by_bound) if by_bound[b] >= quantile * total), None)


@dataclass
class LagProbe:
    """Issue 11's watch-event lag (Lease renewed -> kvha has it), from the operator's own histogram:
    over the replica's whole life (its start and the incident included) and over the steady window
    alone (the difference of the buckets at its two ends)."""

    contains: str = "lag"
    at_start: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def _buckets(self, op: OperatorProcess) -> tuple[str, list[tuple[dict[str, str], float]]] | None:
        for name, samples in metric_samples(op, self.contains).items():
            if name.endswith("_bucket"):
                return name[: -len("_bucket")], samples
        return None

    def begin(self, op: OperatorProcess) -> None:
        found = self._buckets(op)
        self.at_start = found[1] if found else []

    def p99(self, op: OperatorProcess) -> tuple[float | None, float | None, str]:
        """(whole life, steady window, which metric)."""
        found = self._buckets(op)
        if found is None:
            return None, None, "n/a (metric missing)"
        name, now = found
        before = {tuple(sorted(labels.items())): count for labels, count in self.at_start}
        window = [(labels, count - before.get(tuple(sorted(labels.items())), 0.0)) for labels, count in now]
        return histogram_quantile(now, 0.99), histogram_quantile(window, 0.99), f"{name} (histogram)"


# ----------------------------------------------------------------------------- the policy


def bump_generation(scene: Scenario) -> int:
    """Change the policy's spec harmlessly (healthyDelay 5s <-> 6s): its first evaluation by an
    operator that starts now is the one whose observedGeneration reaches the new generation."""
    path = f"{HAPOLICIES}/{scene.policy_name}"
    current = scene.kube.get(path)["spec"]["detection"].get("healthyDelay")
    body = scene.kube.patch(path, {"spec": {"detection": {"healthyDelay": "6s" if current == "5s" else "5s"}}})
    return int(body["metadata"]["generation"])


def evaluated(scene: Scenario, generation: int) -> bool:
    return int(scene.policy_status().get("observedGeneration") or 0) >= generation


# ----------------------------------------------------------------------------- one run


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class RunResult:
    figures: dict[str, float] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    lag_source: str = ""


def wait_moment(what: str, probe: Callable[[], bool], *, since: float, timeout: float) -> float:
    """Seconds from `since` (monotonic) until `probe` holds, polled every 0.2 s; NaN on timeout."""
    while not probe():
        if time.monotonic() - since > timeout:
            print(f"    {what}: not within {timeout:.0f}s", flush=True)
            return math.nan
        time.sleep(POLL)
    took = time.monotonic() - since
    print(f"    {what}: {took:.1f}s", flush=True)
    return took


def nan_to(value: float, default: float) -> float:
    return default if math.isnan(value) else value


def time_acting(
    scene: Scenario, op: OperatorProcess, *, generation: int, since: float, timeout: float
) -> dict[str, float]:
    """Seconds from `since` until `op` holds the leader Lease, answers /readyz 200 as the leader
    (caches synced), and has written its first full evaluation (observedGeneration `generation`)."""
    figures = {
        "leader": wait_moment("holds the leader Lease", lambda: leads(op), since=since, timeout=timeout),
        "ready": wait_moment(
            "/readyz 200 as leader (caches synced)", lambda: leads(op) and op.ready(), since=since, timeout=timeout
        ),
        "evaluation": wait_moment(
            f"first full evaluation (observedGeneration {generation})",
            lambda: evaluated(scene, generation),
            since=since,
            timeout=timeout,
        ),
    }
    print(f"    then: {describe_policy(scene)}", flush=True)
    return figures


def host_failure(
    scene: Scenario, op: OperatorProcess, *, host: str, names: list[str], give_up: float
) -> dict[str, float] | None:
    old_uids = {name: vmi["metadata"]["uid"] for name, vmi in vm_state(scene.bed, scene.namespace).items()}
    old_uids = {name: old_uids[name] for name in names}
    launchers = stuck_launchers(scene, host)
    moments = Moments(power_off=time.time(), host=host)
    scene.bed.faults.power_off(host)
    watch_incident(scene, op, moments, old_uids, give_up=give_up)
    moments.deleted = launcher_deletions(scene, launchers)
    phases = moments.phases(len(names))
    back = really_running(scene, names, not_on=host)
    if phases is None:
        print(f"    {host}: incomplete; {back}/{len(names)} guests running elsewhere; {describe_policy(scene)}")
        return None
    print(
        f"    {host}: detection {phases['detection']:.1f}s, fencing {phases['fencing']:.1f}s, kvha "
        f"{phases.get('kvha_deleted', math.nan):.2f}s to delete every stuck launcher pod "
        f"({phases['kvha_marked']:.2f}s until virt-controller failed every old VMI, {phases['kvha']:.2f}s to the "
        f"last replacement VMI), KubeVirt {phases['kubevirt']:.1f}s; total {phases['total']:.1f}s; "
        f"{back}/{len(names)} guests running elsewhere",
        flush=True,
    )
    return phases


def acceptance(
    watch: PolicyWatch, *, phase: str, since: float, recovery: dict[str, float] | None, limit: float
) -> list[Check]:
    over = watch.overcounts(since)
    storms = watch.storms(since)
    worst = max(over, key=lambda s: s.unhealthy - s.really_unhealthy, default=None)
    total = recovery["total"] if recovery else None
    return [
        Check(
            f"{phase}: unhealthyNodes never above the real number",
            not over,
            f"{len(over)} of {len(watch.since(since))} samples above"
            + (f", worst {worst.unhealthy} counted vs {worst.really_unhealthy} really" if worst else ""),
        ),
        Check(f"{phase}: no storm recorded", not storms, f"storm in {len(storms)} samples"),
        Check(
            f"{phase}: host's VMs Running within thresholds + 15 s",
            total is not None and total <= limit,
            f"{total:.1f}s (limit {limit:.0f}s)" if total is not None else f"not all Running (limit {limit:.0f}s)",
        ),
    ]


def one_run(
    scene: Scenario, index: int, args: argparse.Namespace, victims: list[tuple[str, list[str]]], watch: PolicyWatch
) -> RunResult:
    result = RunResult()
    figures = result.figures
    limit = detection_threshold(scene.bed) + 15
    (host_a, names_a), (host_b, names_b) = victims
    log_dir = Path(args.log_dir) if args.log_dir else None
    replica = {"lease_seconds": args.lease_seconds, "as_pod": True, "log_dir": log_dir}

    step(f"Run {index}: fresh start of two replicas")
    generation = bump_generation(scene)
    since_wall, launched = time.time(), time.monotonic()
    leader = scene.operator(f"kvha-a{index}", **replica).start(wait_leader=False, timeout=120)
    wait_moment("first replica holds the leader Lease", lambda: leads(leader), since=launched, timeout=120)
    standby = scene.operator(f"kvha-b{index}", **replica).start(wait_leader=False, timeout=120)
    started = time_acting(scene, leader, generation=generation, since=launched, timeout=args.start_timeout)
    figures.update({f"start_{k}": v for k, v in started.items()})
    time.sleep(max(0.0, launched + nan_to(started["ready"], 0.0) + args.after_ready - time.monotonic()))

    step(f"Run {index}: {host_a} ({len(names_a)} VMs) loses power {args.after_ready:.0f}s after the leader was ready")
    recovery_a = host_failure(scene, leader, host=host_a, names=names_a, give_up=args.give_up)
    if recovery_a:
        figures.update({f"a_{k}": v for k, v in recovery_a.items()})

    step(f"Run {index}: steady state for {args.steady:.0f}s (Leases renewing, one dead host, incident over)")
    time.sleep(5)
    figures.update(steady_state(leader, standby, seconds=args.steady, lag=LagProbe(args.lag_metric), result=result))

    step(f"Run {index}: the leader is SIGKILLed; the standby takes over")
    result.checks += acceptance(watch, phase="fresh start", since=since_wall, recovery=recovery_a, limit=limit)
    leader.kill()
    since_wall, killed = time.time(), time.monotonic()
    generation = bump_generation(scene)
    taken = time_acting(scene, standby, generation=generation, since=killed, timeout=args.start_timeout)
    figures.update({f"takeover_{k}": v for k, v in taken.items()})
    time.sleep(max(0.0, killed + nan_to(taken["ready"], 0.0) + args.after_ready - time.monotonic()))

    step(
        f"Run {index}: {host_b} ({len(names_b)} VMs) loses power {args.after_ready:.0f}s after the new leader was ready"
    )
    recovery_b = host_failure(scene, standby, host=host_b, names=names_b, give_up=args.give_up)
    if recovery_b:
        figures.update({f"b_{k}": v for k, v in recovery_b.items()})
    result.checks += acceptance(watch, phase="takeover", since=since_wall, recovery=recovery_b, limit=limit)
    standby.stop()
    return result


def steady_state(
    leader: OperatorProcess, standby: OperatorProcess, *, seconds: float, lag: LagProbe, result: RunResult
) -> dict[str, float]:
    lead_pid, standby_pid = pid_of(leader), pid_of(standby)
    peak = RssSampler(lead_pid)
    cpu0 = (tree_cpu(lead_pid), tree_cpu(standby_pid), testbed_cpu(), machine_busy())
    began = time.monotonic()
    lag.begin(leader)
    while (left := began + seconds - time.monotonic()) > 0:
        time.sleep(min(5.0, left))
    wall = time.monotonic() - began
    cpu1 = (tree_cpu(lead_pid), tree_cpu(standby_pid), testbed_cpu(), machine_busy())
    bed_cpu = {name: cpu1[2].get(name, 0.0) - used for name, used in cpu0[2].items()}
    bed_rss = testbed_rss()
    p99, window_p99, result.lag_source = lag.p99(leader)
    figures = {
        "leader_cpu": 100 * (cpu1[0] - cpu0[0]) / wall,
        "leader_rss": tree_rss(lead_pid) / MiB,
        "leader_rss_peak": max(peak.stop(), tree_rss(lead_pid)) / MiB,
        "standby_cpu": 100 * (cpu1[1] - cpu0[1]) / wall,
        "standby_rss": tree_rss(standby_pid) / MiB,
        "testbed_cpu": 100 * sum(bed_cpu.values()) / wall,
        "testbed_rss": sum(bed_rss.values()) / MiB,
        "machine_cpu": 100 * (cpu1[3][0] - cpu0[3][0]) / wall,
        "lag_p99": p99 if p99 is not None else math.nan,
        "lag_p99_steady": window_p99 if window_p99 is not None else math.nan,
    }
    print(
        f"    leader {figures['leader_cpu']:.1f}% of a core, RSS {figures['leader_rss']:.0f} MiB; standby "
        f"{figures['standby_cpu']:.1f}%, {figures['standby_rss']:.0f} MiB; testbed {figures['testbed_cpu']:.0f}%, "
        f"{figures['testbed_rss']:.0f} MiB; the whole machine {figures['machine_cpu']:.0f}% of a core "
        f"(load {loadavg()})",
        flush=True,
    )
    top = sorted(bed_cpu, key=bed_cpu.__getitem__, reverse=True)[:4]
    print(
        "    testbed's busiest: "
        + ", ".join(f"{n} {100 * bed_cpu[n] / wall:.0f}% / {bed_rss.get(n, 0) / MiB:.0f} MiB" for n in top),
        flush=True,
    )
    print(f"    watch-event lag: {result.lag_source}", flush=True)
    return figures


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Row:
    label: str
    key: str
    unit: str
    target: float | None = None
    at_most: bool = False
    """The target is a bound the figure may reach (≤), not one it must stay under (<)."""


def rows(args: argparse.Namespace, bed: Testbed) -> list[Row]:
    large = args.nodes > 100
    threshold = detection_threshold(bed)
    recovery_target = threshold + (20 if large else 15)
    takeover_target = args.lease_seconds + (10 if large else 5)
    return [
        Row("start -> /readyz 200 (caches synced)", "start_ready", "s", 90 if large else 20),
        Row("start -> first full policy evaluation", "start_evaluation", "s", 90 if large else 20),
        Row("  (start -> leader Lease held)", "start_leader", "s"),
        Row("steady CPU of the leader", "leader_cpu", "% core", 25 if large else 5),
        Row("RSS of the leader (end of window)", "leader_rss", "MiB", 400 if large else 150),
        Row("  RSS of the leader, peak of the run so far", "leader_rss_peak", "MiB"),
        Row("  standby's CPU (shown apart)", "standby_cpu", "% core"),
        Row("  standby's RSS", "standby_rss", "MiB"),
        Row("  testbed's own CPU (shown apart)", "testbed_cpu", "% core"),
        Row("  testbed's own RSS", "testbed_rss", "MiB"),
        Row("  whole machine's CPU meanwhile (other work too)", "machine_cpu", "% core"),
        Row("takeover: SIGKILL -> standby's first evaluation", "takeover_evaluation", "s", takeover_target, True),
        Row("  SIGKILL -> standby holds the Lease", "takeover_leader", "s"),
        Row("  SIGKILL -> standby /readyz 200 as leader", "takeover_ready", "s"),
        Row(f"host of {args.host_vms} VMs fails -> last VM Running", "a_total", "s", recovery_target, True),
        Row("  detection: power-off -> NodeFailover", "a_detection", "s"),
        Row("  fencing: NodeFailover -> fencedAt", "a_fencing", "s"),
        Row("  kvha: fencedAt -> every stuck launcher pod deleted", "a_kvha_deleted", "s"),
        Row("  fencedAt -> every old VMI failed (virt-controller's part too)", "a_kvha_marked", "s"),
        Row("  KubeVirt + scheduler: -> last new VMI Running", "a_kubevirt", "s"),
        Row(f"kvha's own part for {args.kvha_vms} VMs (after takeover)", "b_kvha_deleted", "s", 2),
        Row("  fencedAt -> every old VMI failed (virt-controller's part too)", "b_kvha_marked", "s"),
        Row("  fencedAt -> last replacement VMI created", "b_kvha", "s"),
        Row(f"  host of {args.kvha_vms} VMs -> last VM Running", "b_total", "s", recovery_target, True),
        Row("watch-event lag p99 (Lease renewed -> kvha has it)", "lag_p99", "s", 2 if large else 1),
        Row("  the same, steady window only", "lag_p99_steady", "s"),
    ]


def print_table(args: argparse.Namespace, bed: Testbed, results: list[RunResult]) -> None:
    step(
        f"Issue 11 at {args.nodes} nodes / {args.vms} VMs: median of {len(results)} run(s); "
        f"targets for {'500 / 10,000' if args.nodes > 100 else '100 / 2,000'}"
    )
    print(f"  {'what':52s} {'median':>10s}   {'runs':24s} {'target':>10s} {'ratio':>7s}")
    for row in rows(args, bed):
        values = [r.figures[row.key] for r in results if not math.isnan(r.figures.get(row.key, math.nan))]
        if row.key == "lag_p99" and not values:
            sources = {r.lag_source for r in results}
            print(f"  {row.label:52s} {' / '.join(sorted(sources)):>10s}")
            continue
        middle = statistics.median(values) if values else None
        shown = f"{middle:.1f} {row.unit}" if middle is not None else "n/a"
        runs = " / ".join(f"{v:.1f}" for v in values) if values else "(none complete)"
        target = ratio = ""
        if row.target is not None:
            target = f"{'<=' if row.at_most else '<'} {row.target:g}"
            if middle is not None:
                ok = middle <= row.target if row.at_most else middle < row.target
                ratio = f"{middle / row.target:.2f}" + ("" if ok else " !")
        print(f"  {row.label:52s} {shown:>10s}   {runs:24s} {target:>10s} {ratio:>7s}")
    print("  (ratio = median / target; '!' marks a missed target)")
    step("Issue 15's acceptance checks")
    names = list(dict.fromkeys(c.name for r in results for c in r.checks))
    for name in names:
        found = [c for r in results for c in r.checks if c.name == name]
        verdict = "PASS" if all(c.ok for c in found) else "FAIL"
        print(f"  {verdict}  {name}: " + "; ".join(c.detail for c in found))


def live_failover_check(watch: PolicyWatch) -> Check:
    wrong = watch.failovers_of_live_nodes
    return Check(
        "all runs: no NodeFailover for a live node",
        not wrong,
        ", ".join(f"{name} ({node})" for name, node in wrong.items()) or "none",
    )


# ----------------------------------------------------------------------------- main


def bench(args: argparse.Namespace) -> None:
    with Testbed(ensure_built(), scale_testbed_config()) as bed:
        scene = Scenario.standalone(bed, f"sb{os.getpid()}")
        try:
            step(f"Staging {args.nodes} nodes and {args.vms} VMs ({2 * args.runs} victim hosts first)")
            victims = []
            for run in range(args.runs):
                for tag, size in (("a", args.host_vms), ("b", args.kvha_vms)):
                    victims.append(stage_victim(scene, f"{tag}{run}", size))
                    print(f"    {victims[-1][0]}: {size} VMs Running, reserved", flush=True)
            victim_vms = args.runs * (args.host_vms + args.kvha_vms)
            stage_fleet(scene, nodes=args.nodes - len(victims), vms=args.vms - victim_vms, already=len(victims))
            scene.policy(
                fencing=scene.remediation_fencing(),
                restart={"maxParallel": max(args.host_vms, args.kvha_vms), "tierOrdering": "None"},
            )
            print(
                f"    policy: detection {FAST_DETECTION}, fencing Remediation (simulated fence agent, delay "
                f"{bed.sim.ctx.config.fence_delay:.0f}s), storm guard at its defaults; kwok Leases of "
                f"{bed.config.lease_duration_seconds}s, node-monitor grace "
                f"{bed.config.plane.node_monitor_grace_period}s "
                f"-> detection threshold {detection_threshold(bed):.0f}s; operator Lease {args.lease_seconds}s",
                flush=True,
            )
            print(f"    load after staging: {loadavg()}", flush=True)
            results = []
            with PolicyWatch(scene, interval=0.5) as watch:
                for run in range(args.runs):
                    results.append(one_run(scene, run + 1, args, victims[2 * run : 2 * run + 2], watch))
                print(f"\n  {watch.summary()}; sampling errors {watch.errors}", flush=True)
            results[-1].checks.append(live_failover_check(watch))
            print_table(args, bed, results)
        finally:
            scene.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100, help="kwok nodes, victims included (default 100)")
    parser.add_argument("--vms", type=int, default=2000, help="VMs, the victims' included (default 2000)")
    parser.add_argument("--runs", type=int, default=3, help="runs on the one testbed; medians reported (default 3)")
    parser.add_argument("--host-vms", type=int, default=100, help="VMs of the host failing after a fresh start")
    parser.add_argument("--kvha-vms", type=int, default=50, help="VMs of the host failing after the takeover")
    parser.add_argument("--lease-seconds", type=int, default=15, help="operator's leader Lease (the chart's 15)")
    parser.add_argument("--steady", type=float, default=60, help="steady-state window, seconds (default 60)")
    parser.add_argument("--after-ready", type=float, default=30, help="power-off this long after ready (30)")
    parser.add_argument("--start-timeout", type=float, default=600, help="seconds to wait for ready/evaluation")
    parser.add_argument("--give-up", type=float, default=120, help="seconds after a power-off to stop waiting")
    parser.add_argument("--lag-metric", default="lag", help="the lag row reads kvha_ metrics containing this")
    parser.add_argument("--log-dir", default="", help="where the operators' logs go (default: a temp dir)")
    args = parser.parse_args()
    if args.vms < args.runs * (args.host_vms + args.kvha_vms) or args.nodes <= 2 * args.runs:
        parser.error("--vms and --nodes must leave a fleet besides the victims (2 hosts per run)")
    started = time.monotonic()
    print(f"load before: {loadavg()} ({os.cpu_count()} CPUs)", flush=True)
    bench(args)
    print(f"\nload after: {loadavg()}; bench took {(time.monotonic() - started) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
