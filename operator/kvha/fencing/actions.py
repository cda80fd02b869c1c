"""What fencing asks actuation to do. Each action is idempotent: the state machine re-issues it
until its effect is observed, so a crash or a failed API call is repaired by the next step."""

from __future__ import annotations

from dataclasses import dataclass

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
    """Create a remediation object (kind = template kind without "Template") named after the node,
    as node-healthcheck-operator does, so medik8s remediators recognise it."""

    node: str
    template: TemplateReference
    name: str


@dataclass(frozen=True, slots=True)
class DeleteRemediation:
    node: str
    name: str
    template: TemplateReference


@dataclass(frozen=True, slots=True)
class RemoveFenceConfirmation:
    """Remove the kvha.io/fence-confirmed annotation from a recovered node: left in place it would
    confirm the *next* incident on that node without anyone having checked the machine."""

    node: str


FenceAction = (
    ApplyOutOfServiceTaint | RemoveOutOfServiceTaint | CreateRemediation | DeleteRemediation | RemoveFenceConfirmation
)
