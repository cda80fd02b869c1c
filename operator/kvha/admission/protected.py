"""Admission control from the protected VMs themselves, cheaply at cluster scale.

Only the hosts that may fail in the worst case need placement candidates (constraints and all);
for every other host a sum of requests is enough to rank it. At 100,000 VMs building full
candidates for every VM is most of the cost, so they are built for the worst `limit` hosts only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from kvha.admission.host_failures import failover_capacity, hosts_worst_first
from kvha.models.views import PodView, VMView
from kvha.placement import Candidate, NodeCapacity, launcher_placement, launcher_requests


class ProtectedVM(NamedTuple):
    """A protected VM running on `node`, with its launcher pod when known. A NamedTuple, not a
    frozen dataclass: one is built per protected VM every evaluation, and at 100,000 VMs a frozen
    dataclass's constructor alone costs half a second."""

    vm: VMView
    node: str
    pod: PodView | None
    priority: int


def capacity_for_protected(*, protected: Sequence[ProtectedVM], nodes: Sequence[NodeCapacity], limit: int) -> int:
    """`failover_capacity` for these VMs: how many host failures (up to `limit`) they survive."""
    requests = [launcher_requests(p.vm, p.pod) for p in protected]
    demand: dict[str, tuple[int, int]] = {}
    for item, (cpu, memory) in zip(protected, requests, strict=True):
        total_memory, total_cpu = demand.get(item.node, (0, 0))
        demand[item.node] = (total_memory + memory, total_cpu + cpu)
    worst = set(hosts_worst_first(demand=demand, nodes=nodes)[:limit])
    by_node: dict[str, list[Candidate]] = {}
    for item, (cpu, memory) in zip(protected, requests, strict=True):
        if item.node in worst:
            by_node.setdefault(item.node, []).append(
                Candidate(
                    key=item.vm.key,
                    cpu_millis=cpu,
                    memory_bytes=memory,
                    placement=launcher_placement(item.vm, item.pod),
                    priority=item.priority,
                )
            )
    return failover_capacity(protected_by_node=by_node, nodes=nodes, limit=limit)
