"""What the fencing state machine needs to see of the world, gathered by the handler."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kvha.constants import GROUP
from kvha.models.views import NodeView, PodView


@dataclass(frozen=True, slots=True)
class IncidentRef:
    """The NodeFailover that records this incident. Evidence of fencing counts only if it belongs
    to this incident: a taint, annotation or remediation left by an earlier one proves nothing about
    the node now (it may since have been rebooted and be merely partitioned)."""

    name: str
    uid: str
    """The NodeFailover's uid: unique across time, so a remediation whose ownerReference names it
    was created for this incident, with no clock to compare."""
    detected_at: datetime


@dataclass(frozen=True, slots=True)
class RemediationObservation:
    """The remediation object named after the node, as medik8s remediators report on it
    (the Succeeded condition True or False)."""

    exists: bool
    succeeded: bool = False
    failed: bool = False
    message: str = ""
    uid: str | None = None
    """The object's own uid, so kvha deletes exactly the object it created and not one that
    replaced it under the same name."""
    owner_uid: str | None = None
    """The uid of the NodeFailover in its ownerReferences; None when no NodeFailover owns it
    (node-healthcheck-operator's, an administrator's)."""

    @classmethod
    def from_api(cls, obj: Mapping[str, Any] | None) -> RemediationObservation:
        if obj is None:
            return cls(exists=False)
        meta = obj.get("metadata") or {}
        owners: list[Mapping[str, Any]] = meta.get("ownerReferences") or []
        owner = next(
            (
                o
                for o in owners
                if o.get("kind") == "NodeFailover" and str(o.get("apiVersion", "")).startswith(f"{GROUP}/")
            ),
            None,
        )
        conditions: list[Mapping[str, Any]] = (obj.get("status") or {}).get("conditions") or []
        succeeded = next((c for c in conditions if c.get("type") == "Succeeded"), {})
        return cls(
            exists=True,
            succeeded=succeeded.get("status") == "True",
            failed=succeeded.get("status") == "False",
            message=str(succeeded.get("message") or ""),
            uid=meta.get("uid"),
            owner_uid=owner.get("uid") if owner else None,
        )

    def created_for(self, incident: IncidentRef) -> bool:
        return self.exists and self.owner_uid is not None and self.owner_uid == incident.uid


@dataclass(frozen=True, slots=True)
class FenceObservation:
    node_name: str
    node: NodeView | None
    """None when the Node object has been deleted."""
    node_healthy: bool
    """`kvha.detection.incident_can_close` for the node: healthy and stable for healthyDelay."""
    incident: IncidentRef
    remediation: RemediationObservation | None = None
    pods_remaining_on_node: int = 0
    """`pods_holding_node`: the pods whose departure the out-of-service taint waits for."""
    taint_shared_with: tuple[str, ...] = ()
    """Other NodeFailovers of this node that may hold or come to rely on its out-of-service taint
    (unfinished, not being deleted themselves). Filled only when this one is being deleted: then
    the node's health no longer protects their evidence (see `release_fencing`)."""
    last_heard_from: datetime | None = None
    """`kvha.detection.last_heard_from`: the watchdog deadline counts from the later of this and
    the incident's `detected_at`, so a node that still talks to the cluster is never assumed reset."""


def pods_holding_node(pods: Iterable[PodView]) -> int:
    """Pods bound to a fenced node that must be gone before its out-of-service taint is removed
    (Kubernetes' rule for non-graceful shutdown: a pod still bound there could start again with
    volumes another node now uses). Terminal pods hold nothing; DaemonSet and static pods are never
    evicted and run again at once when the node returns, so they would hold the taint forever."""
    return sum(1 for pod in pods if not pod.terminal and not pod.returns_with_node)
