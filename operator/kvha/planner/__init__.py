"""The failover planner: who restarts where, in what order, how many at once.

The placement primitives it builds on live in `kvha.placement` (shared with admission control)
and are re-exported here for the handlers' convenience.
"""

from kvha.placement import (
    Candidate,
    NodeCapacity,
    PlacementResult,
    fits,
    launcher_placement,
    launcher_requests,
    node_capacities,
    place,
)
from kvha.planner.failover import (
    RETRY_INTERVAL,
    WAIT_RECHECK,
    FailoverPlan,
    FailoverSnapshot,
    RestartVM,
    holds_restart_slot,
    initial_entries,
    plan_failover,
)

__all__ = [
    "RETRY_INTERVAL",
    "WAIT_RECHECK",
    "Candidate",
    "FailoverPlan",
    "FailoverSnapshot",
    "NodeCapacity",
    "PlacementResult",
    "RestartVM",
    "fits",
    "holds_restart_slot",
    "initial_entries",
    "launcher_placement",
    "launcher_requests",
    "node_capacities",
    "place",
    "plan_failover",
]
