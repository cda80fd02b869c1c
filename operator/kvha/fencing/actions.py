"""What fencing asks actuation to do. Each action is idempotent: the state machine re-issues it
until its effect is observed, so a crash or a failed API call is repaired by the next step."""

from __future__ import annotations

from dataclasses import dataclass

from kvha.fencing.observation import IncidentRef
from kvha.models.hapolicy import TemplateReference


@dataclass(frozen=True, slots=True)
class ApplyOutOfServiceTaint:
    """Add node.kubernetes.io/out-of-service=nodeshutdown:NoSchedule (non-graceful node shutdown).

    Pod GC and the attach-detach controller look at the key only, so terminating pods are deleted
    and volumes detached; with NoSchedule rather than NoExecute the taint manager evicts nothing
    else, and kvha removes the stuck instances itself, in priority order."""

    node: str


@dataclass(frozen=True, slots=True)
class RemoveOutOfServiceTaint:
    node: str


@dataclass(frozen=True, slots=True)
class CreateRemediation:
    """Create a remediation object (of the template's `remediation_kind`) named after the node,
    as node-healthcheck-operator does, so medik8s remediators recognise it. Its ownerReference
    names the incident's NodeFailover: only a remediation so owned can confirm this incident."""

    node: str
    template: TemplateReference
    name: str
    owner: IncidentRef


@dataclass(frozen=True, slots=True)
class DeleteRemediation:
    """Delete the remediation kvha created, with its uid as precondition: node-healthcheck-operator
    may own one of the same name for the same node, and kvha never deletes what it did not create."""

    node: str
    name: str
    template: TemplateReference
    uid: str | None


@dataclass(frozen=True, slots=True)
class RemoveFenceConfirmation:
    """Remove the kvha.io/fence-confirmed annotation given for this incident from a recovered node,
    only while it still has that value (a confirmation given since for another incident stays)."""

    node: str
    value: str


FenceAction = (
    ApplyOutOfServiceTaint | RemoveOutOfServiceTaint | CreateRemediation | DeleteRemediation | RemoveFenceConfirmation
)
