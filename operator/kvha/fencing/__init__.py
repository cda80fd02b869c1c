"""Fencing: make sure a failed node's VMs cannot run any more before they run elsewhere."""

from kvha.fencing.actions import (
    ApplyOutOfServiceTaint,
    CreateRemediation,
    DeleteRemediation,
    FenceAction,
    RemoveFenceConfirmation,
    RemoveOutOfServiceTaint,
)
from kvha.fencing.machine import (
    OBSERVE_INTERVAL,
    UNFENCED_CONFIRMATION,
    FencingStep,
    release_fencing,
    restart_clearance,
    step_fencing,
)
from kvha.fencing.observation import FenceObservation, IncidentRef, RemediationObservation, pods_holding_node

__all__ = [
    "OBSERVE_INTERVAL",
    "UNFENCED_CONFIRMATION",
    "ApplyOutOfServiceTaint",
    "CreateRemediation",
    "DeleteRemediation",
    "FenceAction",
    "FenceObservation",
    "FencingStep",
    "IncidentRef",
    "RemediationObservation",
    "RemoveFenceConfirmation",
    "RemoveOutOfServiceTaint",
    "pods_holding_node",
    "release_fencing",
    "restart_clearance",
    "step_fencing",
]
