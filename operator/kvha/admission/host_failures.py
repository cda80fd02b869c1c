"""How many host failures the cluster can absorb for the VMs a policy protects (vSphere HA's
"host failures cluster tolerates"), so users learn about a shortfall before an incident does.

The exact question — can *every* set of k hosts fail and all their protected VMs still be placed —
means trying all C(nodes, k) sets, each a bin-packing problem; neither is affordable every few
seconds on a large cluster. The heuristic takes the worst plausible case instead: the k hosts
carrying the most protected demand (memory, then CPU; ties broken by the most free memory, whose
loss removes the most room) fail together, and their VMs are placed on the rest with the very
placement the failover planner uses. k grows from 1 until that fails, so the answer is what the
planner would actually achieve for those failures. It can overstate the tolerance when a smaller
host's VMs are harder to place (narrow node selectors, tolerations few nodes match); the
failover itself still places VM by VM and reports any VM that does not fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from kvha.models.resources import Resources
from kvha.placement import Candidate, NodeCapacity, PodTopology, place


def hosts_worst_first(*, demand: Mapping[str, Resources], nodes: Sequence[NodeCapacity]) -> list[str]:
    """Hosts by how much their failure would hurt: most protected memory, then CPU, then the
    most free memory (whose loss removes the most room), then name for determinism.
    `demand` is what the protected VMs request, per host."""
    free_memory = {n.name: n.free_memory_bytes for n in nodes}

    def severity(host: str) -> tuple[int, int, int, str]:
        requested = demand.get(host, Resources.ZERO)
        return -requested.memory_bytes, -requested.cpu_millis, -free_memory.get(host, 0), host

    return sorted(set(free_memory) | set(demand), key=severity)


def failover_capacity(
    *,
    protected_by_node: Mapping[str, Sequence[Candidate]],
    nodes: Sequence[NodeCapacity],
    limit: int,
    topology: PodTopology | None = None,
    instances_by_node: Mapping[str, frozenset[str]] | None = None,
) -> int:
    """The largest k ≤ `limit` such that the k hosts with the most protected demand can all fail
    and every protected VM on them is re-placed on the remaining `nodes`.

    `protected_by_node` maps a node name to its protected VMs as placement candidates (launcher
    requests and constraints, `kvha.placement.launcher_requests`); `nodes` are the healthy,
    schedulable nodes with their current free capacity, including the ones that may fail.
    With `topology`, pod (anti-)affinity and spread are honoured too; the instances (VMI uids) in
    `instances_by_node` of the failed hosts are the ones re-placed, so they count there no more.
    """
    demand = {
        host: Resources(cpu_millis=sum(vm.cpu_millis for vm in vms), memory_bytes=sum(vm.memory_bytes for vm in vms))
        for host, vms in protected_by_node.items()
    }
    worst_first = hosts_worst_first(demand=demand, nodes=nodes)
    for failures in range(1, limit + 1):
        if failures > len(worst_first):
            return failures - 1
        failed = set(worst_first[:failures])
        displaced = [c for host in failed for c in protected_by_node.get(host, ())]
        survivors = [n for n in nodes if n.name not in failed]
        after = topology
        if topology is not None and instances_by_node:
            leaving = frozenset().union(*(instances_by_node.get(host, frozenset()) for host in failed))
            after = replace(topology, leaving=topology.leaving | leaving)
        if place(candidates=displaced, nodes=survivors, topology=after).unplaced:
            return failures - 1
    return max(limit, 0)
