"""Admission control from the protected VMs themselves, cheaply at cluster scale.

Only the hosts that may fail in the worst case need placement candidates (constraints and all);
for every other host a sum of requests is enough to rank it. At 100,000 VMs building full
candidates for every VM is most of the cost, so they are built for the worst `limit` hosts only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from kvha.admission.host_failures import failover_capacity, hosts_worst_first
from kvha.models.resources import Resources
from kvha.models.views import PodView, VMView
from kvha.placement import (
    Candidate,
    NodeCapacity,
    PodTopology,
    launcher_cpu_millis,
    launcher_extended_requests,
    launcher_memory_bytes,
    launcher_placement,
    launcher_requests,
)


class ProtectedVM(NamedTuple):
    """A protected VM running on `node`, with its launcher pod when known. A NamedTuple, not a
    frozen dataclass: one is built per protected VM every evaluation, and at 100,000 VMs a frozen
    dataclass's constructor alone costs half a second."""

    vm: VMView
    node: str
    pod: PodView | None
    priority: int


def protected_demand(protected: Sequence[ProtectedVM]) -> dict[str, Resources]:
    """What the protected VMs' launchers request, per host."""
    # Every protected VM of the cluster passes here: plain int sums per host, one Resources per
    # host at the end (see `launcher_cpu_millis`).
    cpu: dict[str, int] = {}
    memory: dict[str, int] = {}
    for item in protected:
        cpu[item.node] = cpu.get(item.node, 0) + launcher_cpu_millis(item.vm, item.pod)
        memory[item.node] = memory.get(item.node, 0) + launcher_memory_bytes(item.vm, item.pod)
    return {host: Resources(cpu_millis=cpu[host], memory_bytes=memory[host]) for host in cpu}


def worst_hosts(*, protected: Sequence[ProtectedVM], nodes: Sequence[NodeCapacity], count: int) -> list[str]:
    """The `count` hosts whose failure admission control assumes first (`hosts_worst_first`)."""
    return hosts_worst_first(demand=protected_demand(protected), nodes=nodes)[:count]


def capacity_for_protected(
    *,
    protected: Sequence[ProtectedVM],
    nodes: Sequence[NodeCapacity],
    limit: int,
    topology: PodTopology | None = None,
) -> int:
    """`failover_capacity` for these VMs: how many host failures (up to `limit`) they survive."""
    worst = set(worst_hosts(protected=protected, nodes=nodes, count=limit))
    by_node: dict[str, list[Candidate]] = {}
    instances: dict[str, set[str]] = {}
    for item in protected:
        if item.node in worst:
            requests = launcher_requests(item.vm, item.pod)
            by_node.setdefault(item.node, []).append(
                Candidate(
                    key=item.vm.key,
                    cpu_millis=requests.cpu_millis,
                    memory_bytes=requests.memory_bytes,
                    placement=launcher_placement(item.vm, item.pod),
                    priority=item.priority,
                    scheduling=item.vm.scheduling,
                    extended=launcher_extended_requests(item.vm, item.pod),
                )
            )
            if item.pod is not None and item.pod.vmi_uid:
                instances.setdefault(item.node, set()).add(item.pod.vmi_uid)
    return failover_capacity(
        protected_by_node=by_node,
        nodes=nodes,
        limit=limit,
        topology=topology,
        instances_by_node={host: frozenset(uids) for host, uids in instances.items()},
    )
