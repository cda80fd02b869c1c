"""The obvious O(VMs × nodes) placement, kept as the specification of `kvha.placement.packing.place`.

The tests check that the fast packer makes exactly the same choices as this scan, and the
benchmark measures how much faster it is. It lives with the tests, not in the wheel, because
nothing in the operator calls it. It shares with the packer only the per-node predicates (`fits`,
`extended_fits`, the inter-pod checks), not how nodes are grouped, ordered or skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

from kvha.placement.capacity import NodeCapacity
from kvha.placement.constraints import fits
from kvha.placement.inter_pod import InterPodConstraints, PodTopology
from kvha.placement.packing import Candidate, PlacementResult, extended_fits, placement_order


def place_by_scanning(
    *, candidates: Sequence[Candidate], nodes: Sequence[NodeCapacity], topology: PodTopology | None = None
) -> PlacementResult:
    """For each VM in order, check every node; take the one with the most free memory (then the
    first name) among those it may run on, fits, and where no other pod's terms forbid it."""
    free_cpu = {n.name: n.free_cpu_millis for n in nodes}
    free_memory = {n.name: n.free_memory_bytes for n in nodes}
    free_extended = {n.name: dict(n.free_extended) for n in nodes}
    inter_pod = InterPodConstraints(topology) if topology is not None else None
    assigned: dict[str, str] = {}
    unplaced: list[str] = []
    for candidate in placement_order(candidates):
        check = inter_pod.check_for(candidate.scheduling, candidate.placement) if inter_pod else None
        best: tuple[int, str] | None = None  # (-free memory, name): the smallest wins
        for node in nodes:
            rank = (-free_memory[node.name], node.name)
            if (
                fits(candidate.placement, node)
                and free_cpu[node.name] >= candidate.cpu_millis
                and free_memory[node.name] >= candidate.memory_bytes
                and extended_fits(free_extended[node.name], candidate.extended)
                and (check is None or check(node) is None)
                and (best is None or rank < best)
            ):
                best = rank
        if best is None:
            unplaced.append(candidate.key)
            continue
        name = best[1]
        assigned[candidate.key] = name
        free_cpu[name] -= candidate.cpu_millis
        free_memory[name] -= candidate.memory_bytes
        for resource, amount in candidate.extended:
            free_extended[name][resource] = free_extended[name].get(resource, 0) - amount
        if inter_pod is not None:
            node = next(n for n in nodes if n.name == name)
            inter_pod.add(candidate.scheduling, name, node.labels)
    return PlacementResult(assigned=assigned, unplaced=tuple(unplaced))
