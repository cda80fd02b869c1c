"""What the fencing state machine needs to see of the world, gathered by the handler."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kvha.models.views import NodeView


@dataclass(frozen=True, slots=True)
class RemediationObservation:
    """The remediation object named after the node, as medik8s remediators report on it
    (the Succeeded condition True or False)."""

    exists: bool
    succeeded: bool = False
    failed: bool = False
    message: str = ""


@dataclass(frozen=True, slots=True)
class FenceObservation:
    node_name: str
    node: NodeView | None
    """None when the Node object has been deleted."""
    node_healthy: bool
    """`kvha.detection.incident_can_close` for the node: healthy and stable for healthyDelay."""
    unhealthy_since: datetime
    remediation: RemediationObservation | None = None
    pods_remaining_on_node: int = 0
    """Non-terminal pods still bound to the node (terminal pods hold nothing)."""
    last_heard_from: datetime | None = None
    """`kvha.detection.last_heard_from`: the watchdog deadline counts from the later of this and
    `unhealthy_since`, so a node that still talks to the cluster is never assumed reset."""
