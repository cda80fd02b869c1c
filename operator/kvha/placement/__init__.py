"""Where can a VM run: node capacities, scheduling constraints, and fast priority-ordered placement.

Shared by the failover planner (where do this failed node's VMs go now) and admission control
(could the cluster absorb the loss of its largest hosts), which are independent of each other.
"""

from kvha.placement.capacity import (
    NodeCapacity,
    launcher_cpu_millis,
    launcher_extended_requests,
    launcher_memory_bytes,
    launcher_placement,
    launcher_requests,
    node_capacities,
    reserve,
)
from kvha.placement.constraints import fits
from kvha.placement.inter_pod import PodTopology
from kvha.placement.packing import Candidate, PlacementResult, place, placement_order

__all__ = [
    "Candidate",
    "NodeCapacity",
    "PlacementResult",
    "PodTopology",
    "fits",
    "launcher_cpu_millis",
    "launcher_extended_requests",
    "launcher_memory_bytes",
    "launcher_placement",
    "launcher_requests",
    "node_capacities",
    "place",
    "placement_order",
    "reserve",
]
