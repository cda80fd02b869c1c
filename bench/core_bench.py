"""How fast the decision core is at cluster scale. Prints figures; asserts nothing.

Scenario: 5,000 healthy nodes (64 cores, 512 GiB) already running N VMs (20 per node at 100k),
and one failed host whose 1,000 VMs must be placed. Timed, as the handler would run it:

* failover plan ("capacities+plan"): building node capacities from every launcher pod, the
  incident's entries, then `plan_failover` for the 1,000 VMs (maxParallel 1000, so every VM is
  placed and restarted in one plan; the next column is the same with the default of 10);
* admission control: building the protected VMs' candidates per node, node capacities, and
  `failover_capacity` for up to 3 host failures;
* baselines on the same data: a naive first-fit (first node in name order that fits) and the
  reference scan (`place_by_scanning`: the same spread policy, every node checked for every VM).

Usage: python bench/core_bench.py [--runs 5] [--sizes 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

from kvha.admission import ProtectedVM, capacity_for_protected, failover_capacity
from kvha.models.hapolicy import RestartSpec, TierOrdering
from kvha.models.views import (
    NodeCondition,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    NodeView,
    Placement,
    PodView,
    Taint,
    Toleration,
    VMIView,
    VMView,
)
from kvha.placement import (
    Candidate,
    NodeCapacity,
    fits,
    launcher_placement,
    launcher_requests,
    node_capacities,
    place,
)
from kvha.planner import FailoverPlan, FailoverSnapshot, initial_entries, plan_failover

# The reference scan is a test oracle: it lives with the tests, outside the operator's package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from placement_reference import place_by_scanning

GI = 2**30
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NODES = 5_000
FAILED_VMS = 1_000
FAILED = "worker-failed"
ZONES = ("zone-a", "zone-b", "zone-c")
DEDICATED = Taint("dedicated", "NoSchedule", "databases")
PLACEMENTS = (
    Placement(),
    Placement(
        required_terms=(
            NodeSelectorTerm(
                match_expressions=(NodeSelectorRequirement("topology.kubernetes.io/zone", "In", ("zone-a", "zone-b")),)
            ),
        )
    ),
    Placement(
        required_terms=(
            NodeSelectorTerm(
                match_expressions=(NodeSelectorRequirement("topology.kubernetes.io/zone", "NotIn", ("zone-c",)),)
            ),
        )
    ),
    Placement(
        node_selector=(("disk", "ssd"),),
        tolerations=(Toleration(key="dedicated", operator="Equal", value="databases", effect="NoSchedule"),),
    ),
)
PLACEMENT_WEIGHTS = (80, 10, 5, 5)
T = TypeVar("T")


class Cluster:
    def __init__(self, existing_vms: int, seed: int = 7) -> None:
        rng = random.Random(seed)
        ready = (NodeCondition("Ready", "True", NOW, NOW),)
        self.nodes = [
            NodeView(
                name=f"worker-{i:05d}",
                labels={
                    "kubernetes.io/hostname": f"worker-{i:05d}",
                    "kubevirt.io/schedulable": "true",
                    "topology.kubernetes.io/zone": ZONES[i % 3],
                    **({"disk": "ssd"} if i % 4 == 0 else {}),
                },
                taints=(DEDICATED,) if i % 20 == 0 else (),
                conditions=ready,
                allocatable_cpu_millis=64_000,
                allocatable_memory_bytes=512 * GI,
            )
            for i in range(NODES)
        ]
        self.nodes.append(
            NodeView(
                name=FAILED,
                labels={"kubevirt.io/schedulable": "true"},
                conditions=ready,
                allocatable_cpu_millis=10**7,
                allocatable_memory_bytes=10**15,
            )
        )
        self.vms: dict[str, VMView] = {}
        self.vmis: dict[str, VMIView] = {}
        self.pods: list[PodView] = []
        self.protected_by_node: dict[str, list[tuple[VMView, PodView]]] = {}
        for i in range(existing_vms):
            node = self.nodes[i % NODES].name
            self._add(rng, f"vm-{i:06d}", node, small=True)
        self.failed_vms = [self._add(rng, f"failed-{i:04d}", FAILED, small=False) for i in range(FAILED_VMS)]

    def _add(self, rng: random.Random, name: str, node: str, *, small: bool) -> VMView:
        vcpus = rng.choice((1, 2, 2, 4) if small else (1, 2, 4, 8))
        memory = rng.choice((2, 4, 8, 16) if small else (2, 4, 8, 16, 32)) * GI
        placement = rng.choices(PLACEMENTS, PLACEMENT_WEIGHTS)[0]
        vm = VMView(
            namespace=f"team-{rng.randrange(50)}",
            name=name,
            uid=f"uid-{name}",
            run_strategy="Always",
            annotations={"kvha.io/restart-priority": rng.choice(("Low", "Medium", "High"))},
            cpu_millis=vcpus * 1000,
            memory_bytes=memory,
            placement=placement,
        )
        vmi_uid = f"vmi-{name}"
        pod = PodView(
            namespace=vm.namespace,
            name=f"virt-launcher-{name}",
            node_name=node,
            phase="Running",
            cpu_millis=vm.cpu_millis + 100,
            memory_bytes=memory + 300 * 2**20,
            vmi_uid=vmi_uid,
            placement=placement,
            controller_kind="VirtualMachineInstance",
            controller_uid=vmi_uid,
        )
        self.vms[vm.key] = vm
        self.vmis[vm.key] = VMIView(vm.namespace, name, vmi_uid, node, "Running", ready=True)
        self.pods.append(pod)
        self.protected_by_node.setdefault(node, []).append((vm, pod))
        return vm

    def launcher_pods(self) -> dict[str, list[PodView]]:
        return {p.vmi_uid: [p] for p in self.pods if p.vmi_uid}


def timed(runs: int, work: Callable[[], T]) -> tuple[float, T]:
    """Median wall time of `runs` calls, and the last result."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        result = work()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result


def plan(cluster: Cluster, launchers: dict[str, list[PodView]], max_parallel: int) -> FailoverPlan:
    capacities = node_capacities(nodes=cluster.nodes, pods=cluster.pods, exclude={FAILED})
    entries = initial_entries(vms=cluster.failed_vms, vmis=cluster.vmis, failed_node=FAILED, default_priority="Medium")
    return plan_failover(
        FailoverSnapshot(
            failed_node=FAILED,
            entries=entries,
            vms=cluster.vms,
            vmis=cluster.vmis,
            launcher_pods=launchers,
            nodes=capacities,
            fenced=True,
            unfenced_allowed=False,
            unfenced_safe=frozenset(),
            restart=RestartSpec(max_parallel=max_parallel, tier_ordering=TierOrdering.NONE),
            now=NOW,
        )
    )


def launcher_candidate(vm: VMView, pod: PodView | None) -> Candidate:
    """The VM as the planner would place it, from its launcher pod's requests and constraints."""
    requests = launcher_requests(vm, pod)
    return Candidate(vm.key, requests.cpu_millis, requests.memory_bytes, launcher_placement(vm, pod), 3)


def protected_candidates(cluster: Cluster) -> dict[str, list[Candidate]]:
    return {
        node: [launcher_candidate(vm, pod) for vm, pod in pairs]
        for node, pairs in cluster.protected_by_node.items()
        if node != FAILED
    }


def admission(cluster: Cluster) -> int:
    """As the operator computes it (kvha.reconcile.policy): full candidates for the worst hosts only."""
    capacities = node_capacities(nodes=cluster.nodes, pods=cluster.pods, exclude={FAILED})
    protected = [
        ProtectedVM(vm=vm, node=node, pod=pod, priority=3)
        for node, pairs in cluster.protected_by_node.items()
        if node != FAILED
        for vm, pod in pairs
    ]
    return capacity_for_protected(protected=protected, nodes=capacities, limit=3)


def failed_candidates(cluster: Cluster) -> list[Candidate]:
    launchers = cluster.launcher_pods()
    return [launcher_candidate(vm, launchers[f"vmi-{vm.name}"][0]) for vm in cluster.failed_vms]


def first_fit(*, candidates: Sequence[Candidate], nodes: Sequence[NodeCapacity]) -> dict[str, str]:
    """Naive first-fit: each VM on the first node (in name order) that it may use and fits."""
    free = {n.name: [n.free_cpu_millis, n.free_memory_bytes] for n in nodes}
    assigned = {}
    for c in sorted(candidates, key=lambda c: (-c.priority, -c.memory_bytes, c.key)):
        for node in nodes:
            room = free[node.name]
            if room[0] >= c.cpu_millis and room[1] >= c.memory_bytes and fits(c.placement, node):
                room[0] -= c.cpu_millis
                room[1] -= c.memory_bytes
                assigned[c.key] = node.name
                break
    return assigned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(
        f"cpus={os.cpu_count()} load(1m)={load:.2f}  median of {args.runs} runs; {NODES} healthy nodes, "
        f"{FAILED_VMS} VMs on the failed node"
    )
    print(
        f"{'existing VMs':>12} | {'capacities+plan':>15} | {'plan, maxPar 10':>15} | {'admission (k≤3)':>15} | "
        f"{'tolerated':>9} | {'restarts':>8}"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        cluster = Cluster(size)
        launchers = cluster.launcher_pods()
        full, result = timed(args.runs, partial(plan, cluster, launchers, 1000))
        slow, _ = timed(args.runs, partial(plan, cluster, launchers, 10))
        adm, tolerated = timed(args.runs, partial(admission, cluster))
        restarts = len(result.actions)
        print(
            f"{size:>12,} | {full * 1000:>12.0f} ms | {slow * 1000:>12.0f} ms | {adm * 1000:>12.0f} ms | "
            f"{tolerated:>9} | {restarts:>8}"
        )

    cluster = Cluster(max(int(s) for s in args.sizes.split(",")))
    launchers = cluster.launcher_pods()
    capacities = node_capacities(nodes=cluster.nodes, pods=cluster.pods, exclude={FAILED})
    entries = initial_entries(vms=cluster.failed_vms, vmis=cluster.vmis, failed_node=FAILED, default_priority="Medium")
    snapshot = FailoverSnapshot(
        failed_node=FAILED,
        entries=entries,
        vms=cluster.vms,
        vmis=cluster.vmis,
        launcher_pods=launchers,
        nodes=capacities,
        fenced=True,
        unfenced_allowed=False,
        unfenced_safe=frozenset(),
        restart=RestartSpec(max_parallel=1000, tier_ordering=TierOrdering.NONE),
        now=NOW,
    )
    protected = protected_candidates(cluster)
    print(f"\nbreakdown at {len(cluster.pods) - FAILED_VMS:,} existing VMs:")
    for label, work in (
        (
            "node_capacities from all pods",
            partial(node_capacities, nodes=cluster.nodes, pods=cluster.pods, exclude={FAILED}),
        ),
        (
            "initial_entries (1,000 VMs)",
            partial(
                initial_entries,
                vms=cluster.failed_vms,
                vmis=cluster.vmis,
                failed_node=FAILED,
                default_priority="Medium",
            ),
        ),
        ("plan_failover (1,000 VMs)", partial(plan_failover, snapshot)),
        ("admission: candidates for every protected VM", partial(protected_candidates, cluster)),
        (
            "admission: failover_capacity (k<=3)",
            partial(failover_capacity, protected_by_node=protected, nodes=capacities, limit=3),
        ),
    ):
        elapsed, _ = timed(args.runs, work)
        print(f"  {label:<46} {elapsed * 1000:8.1f} ms")

    candidates = failed_candidates(cluster)
    fast, _ = timed(args.runs, partial(place, candidates=candidates, nodes=capacities))
    naive_runs = max(1, min(args.runs, 3))
    naive_ff, _ = timed(naive_runs, partial(first_fit, candidates=candidates, nodes=capacities))
    naive_scan, _ = timed(naive_runs, partial(place_by_scanning, candidates=candidates, nodes=capacities))
    print(f"\nplacement only, {len(candidates)} VMs onto {len(capacities)} nodes:")
    print(f"  kvha place (grouped constraints, memory heaps)  {fast * 1000:9.1f} ms")
    print(
        f"  naive first-fit, median of {naive_runs}                   {naive_ff * 1000:9.1f} ms  "
        f"({naive_ff / fast:.1f}x; stops at the first node with room, so no spreading)"
    )
    print(
        f"  naive spread scan, every node per VM, median of {naive_runs} {naive_scan * 1000:9.1f} ms  "
        f"({naive_scan / fast:.0f}x; the same choices as kvha place)"
    )
    print(f"load(1m) at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
