"""The obvious O(VMs × nodes) placement, kept as the specification of `packing.place`.

The tests check that the fast packer makes exactly the same choices as this scan, and the
benchmark measures how much faster it is. Nothing in the operator calls it.
"""

from __future__ import annotations

from collections.abc import Sequence

from kvha.placement.capacity import NodeCapacity
from kvha.placement.constraints import fits
from kvha.placement.packing import Candidate, PlacementResult, placement_order


def place_by_scanning(*, candidates: Sequence[Candidate], nodes: Sequence[NodeCapacity]) -> PlacementResult:
    """For each VM in order, check every node; take the one with the most free memory (then the
    first name) among those it may run on and fits."""
    free_cpu = {n.name: n.free_cpu_millis for n in nodes}
    free_memory = {n.name: n.free_memory_bytes for n in nodes}
    assigned: dict[str, str] = {}
    unplaced: list[str] = []
    for candidate in placement_order(candidates):
        best: tuple[int, str] | None = None  # (-free memory, name): the smallest wins
        for node in nodes:
            rank = (-free_memory[node.name], node.name)
            if (
                fits(candidate.placement, node)
                and free_cpu[node.name] >= candidate.cpu_millis
                and free_memory[node.name] >= candidate.memory_bytes
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
    return PlacementResult(assigned=assigned, unplaced=tuple(unplaced))
