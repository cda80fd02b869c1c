"""A NodeFailover deleted by hand: undo what its incident put on the node before its finalizer goes.

Deleting the record is how an administrator ends an incident (and the uninstall's first step), so it
must not leave a taint, a confirmation annotation or a remediation behind that nobody will remove.
Only this incident's own things are undone (`kvha.fencing.release_fencing`), nothing restarts, and
the out-of-service taint is kept while another incident of the node may still need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from kvha.fencing import (
    FenceAction,
    FenceObservation,
    IncidentRef,
    RemediationObservation,
    pods_holding_node,
    release_fencing,
)
from kvha.models.events import EventNote
from kvha.models.hapolicy import FencingSpec
from kvha.models.nodefailover import NodeFailoverSpec, NodeFailoverStatus
from kvha.models.views import NodeView, PodView


@dataclass(frozen=True)
class ReleaseSnapshot:
    name: str
    uid: str
    spec: NodeFailoverSpec
    status: NodeFailoverStatus
    fencing: FencingSpec | None
    """The fencing the incident ran with (its remediation template), None when no longer known; a
    remediation kvha cannot name then goes with the NodeFailover, whose ownerReference it carries."""
    node: NodeView | None
    pods_on_node: Sequence[PodView]
    remediation: RemediationObservation | None
    others: Sequence[str]
    """Names of the node's other NodeFailovers that are unfinished and not being deleted themselves."""
    now: datetime


@dataclass(frozen=True)
class Release:
    status: NodeFailoverStatus
    actions: tuple[FenceAction, ...] = ()
    events: tuple[EventNote, ...] = ()
    released: bool = False
    """Nothing of this incident is left on the node: the finalizer may go."""
    recheck_after: float | None = None


def release_incident(snap: ReleaseSnapshot) -> Release:
    observation = FenceObservation(
        node_name=snap.spec.node_name,
        node=snap.node,
        node_healthy=False,  # not consulted: a deleted incident undoes its fencing either way
        incident=IncidentRef(name=snap.name, uid=snap.uid, detected_at=snap.spec.detected_at),
        remediation=snap.remediation,
        pods_remaining_on_node=pods_holding_node(snap.pods_on_node),
        taint_shared_with=tuple(sorted(snap.others)),
    )
    step = release_fencing(
        phase=snap.status.phase,
        status=snap.status.fencing,
        observation=observation,
        fencing=snap.fencing or FencingSpec(),
        now=snap.now,
    )
    status = snap.status.replace(fencing=step.status if snap.status.fencing else None, message=step.status.message)
    return Release(
        status=status,
        actions=step.actions,
        events=step.events,
        released=step.holds_nothing,
        recheck_after=step.recheck_after,
    )
