"""The fencing state machine: Detected → Fencing → Fenced (or Aborted, or Failed), then cleanup.

One function per state, as in self-node-remediation: each takes the recorded status and a fresh
observation and returns the next phase, the new status, idempotent actions and Events. The status
lives in the NodeFailover, so after a crash or a leader change the next step continues where the
last one stopped; every action is re-issued until its effect is observed.

The safety rule: the phase never becomes Fenced without the confirmation the strategy demands,
given for *this* incident. Evidence left by an earlier one proves nothing: the node may have been
rebooted since and now be only partitioned, its VMs running. So an out-of-service taint counts only
if kvha applied it for this NodeFailover or its `timeAdded` is after `detectedAt`; the annotation
only if its value names this NodeFailover (a value like `true` or `false` can be stale, a name
cannot); a remediation only if its ownerReference is this NodeFailover. kvha deletes only the
remediation it created (node-healthcheck-operator may own one of the same name) and removes the
annotation only while it still names this incident.

* OutOfServiceTaint + Manual: a human (or a BMC/PDU agent) annotates the Node with
  kvha.io/fence-confirmed=<name of the NodeFailover>; kvha then applies the out-of-service taint
  and is Fenced once the taint is on the Node. An out-of-service taint applied by someone else
  (a medik8s remediator, the non-graceful shutdown procedure done by hand) is the same statement,
  but only if its `timeAdded` is after the incident was detected.
* OutOfServiceTaint + Watchdog: every node runs a hardware watchdog that resets it once it loses
  the cluster, so after `watchdogTimeout` without contact (counted from the later of
  the incident's `detected_at` and the last Lease renewal or heartbeat) the node is down; kvha applies the
  taint and is Fenced once it is on the Node. Contact after that deadline comes from the rebooted
  node, so the decision stands (the taint is re-applied until it lands).
* Remediation: kvha creates a medik8s remediation named after the node and is Fenced only when it
  reports success; a failure report or the timeout fails the incident.
* None: Fenced at once with `confirmed_by` saying nothing was fenced; the planner then restarts only
  VMs that are safe to run twice.

A deleted Node object counts as confirmation only for OutOfServiceTaint + Manual. Deleting a Node is
a deliberate act: the cloud provider's node-lifecycle controller deletes it only when the instance
is gone, and an administrator who deletes it takes the same responsibility as one who annotates it;
Kubernetes then force-deletes the node's pods exactly as the taint would. For Watchdog the
deletion says nothing about whether the watchdog fired, so the deadline still applies. For
Remediation the remediator owns the verdict (machine-deletion remediation deletes the Node itself
before it reports success), so only its success counts.

If the node becomes healthy (stable for healthyDelay) before it is fenced, the incident is Aborted
and whatever kvha created is removed. After it is fenced, the cleanup waits for the node to recover
(or be deleted): the remediation is deleted, the fence-confirmed annotation removed (tidiness: it
names this incident, so it could not confirm another), and the out-of-service taint kvha applied
is removed only when no pods remain on the node — Kubernetes' rule for non-graceful shutdown,
since a pod still bound there could restart with volumes another node now uses. Failed incidents
keep what was applied (a remediator may still be working, a human will look) until the node
recovers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from kvha.constants import (
    FENCE_CONFIRMED_ANNOTATION,
    OUT_OF_SERVICE_TAINT_KEY,
    REASON_FAILOVER_ABORTED,
    REASON_FENCING_AWAITING,
    REASON_FENCING_CONFIRMED,
    REASON_FENCING_FAILED,
    REASON_FENCING_STARTED,
    REASON_FENCING_TIMEOUT,
    REASON_NODE_RECOVERED,
    REASON_RELEASING,
)
from kvha.fencing.actions import (
    ApplyOutOfServiceTaint,
    CreateRemediation,
    DeleteRemediation,
    FenceAction,
    RemoveFenceConfirmation,
    RemoveOutOfServiceTaint,
)
from kvha.fencing.observation import FenceObservation, IncidentRef
from kvha.models.durations import format_seconds, seconds
from kvha.models.events import EventNote
from kvha.models.hapolicy import (
    FENCING_NONE_MESSAGE,
    REMEDIATION_TEMPLATE_MESSAGE,
    FenceConfirmation,
    FencingSpec,
    FencingStrategy,
)
from kvha.models.nodefailover import FailoverPhase, FencingStatus
from kvha.models.timeutil import format_time
from kvha.models.views import NodeView, Taint

OBSERVE_INTERVAL = 10.0
"""Seconds between checks while waiting for something whose change may not wake the handler
(a taint landing, pods leaving a node)."""
REMEDIATION_POLL = 1.0
"""Seconds between two reads of the remediation an incident waits on. kvha watches no remediation
kind (a template may name any CRD), so nothing wakes the step when the remediator reports success;
one GET a second per fencing incident lets the restarts begin within a second of that verdict
(with OBSERVE_INTERVAL, up to 10 s of a failover's time was kvha not looking)."""

UNFENCED_CONFIRMATION = (
    "nothing: fencing strategy None with allowUnfencedRestart; only VMs that are safe to run twice "
    "(no single-writer volumes, or opted in with kvha.io/allow-unfenced-restart) are restarted"
)


@dataclass(frozen=True, slots=True)
class FencingStep:
    phase: FailoverPhase
    status: FencingStatus
    actions: tuple[FenceAction, ...] = ()
    events: tuple[EventNote, ...] = ()
    recheck_after: float | None = None
    holds_nothing: bool = False
    """Nothing kvha applied for fencing remains (no taint, remediation or confirmation annotation)
    and nothing more will be applied: a terminal incident needs no further fencing steps."""


@dataclass(frozen=True, slots=True)
class _Context:
    phase: FailoverPhase
    status: FencingStatus
    observation: FenceObservation
    fencing: FencingSpec
    now: datetime

    @classmethod
    def of(
        cls,
        *,
        phase: FailoverPhase,
        status: FencingStatus | None,
        observation: FenceObservation,
        fencing: FencingSpec,
        now: datetime,
    ) -> _Context:
        """A first step records the strategy it starts with."""
        return cls(phase, status or FencingStatus(strategy=fencing.strategy), observation, fencing, now)

    @property
    def node(self) -> str:
        return self.observation.node_name

    @property
    def incident(self) -> IncidentRef:
        return self.observation.incident

    @property
    def strategy(self) -> FencingStrategy:
        # The strategy recorded when fencing started wins over a policy edited mid-incident.
        try:
            return FencingStrategy(self.status.strategy)
        except ValueError:
            return self.fencing.strategy

    def seconds_until(self, moment: datetime) -> float:
        return (moment - self.now).total_seconds()

    def step(
        self,
        *,
        phase: FailoverPhase,
        reason: str,
        message: str,
        warning: bool = False,
        actions: Sequence[FenceAction] = (),
        recheck: float | None = None,
        holds_nothing: bool = False,
        **updates: Any,
    ) -> FencingStep:
        """The next step; an Event is posted only when the phase or the message changes, so a
        state that is re-evaluated every few seconds does not flood the event list."""
        status = self.status.replace(**updates, message=message)
        events: tuple[EventNote, ...] = ()
        if phase != self.phase or message != self.status.message:
            events = (EventNote(reason, message, "Warning" if warning else "Normal"),)
        return FencingStep(phase, status, tuple(actions), events, recheck, holds_nothing)


def step_fencing(
    *,
    phase: FailoverPhase,
    status: FencingStatus | None,
    observation: FenceObservation,
    fencing: FencingSpec,
    now: datetime,
) -> FencingStep:
    """One step of the state machine for one incident. Call it on every change and after
    `recheck_after`; it is idempotent for an unchanged observation."""
    ctx = _Context.of(phase=phase, status=status, observation=observation, fencing=fencing, now=now)
    match phase:
        case FailoverPhase.DETECTED:
            return _detected(ctx)
        case FailoverPhase.FENCING:
            return _fencing(ctx)
        case FailoverPhase.ABORTED:
            return _cleanup(ctx, reason=REASON_FAILOVER_ABORTED, subject=_aborted(ctx))
        case _:
            return _fenced(ctx)


def restart_clearance(status: FencingStatus | None) -> tuple[bool, bool]:
    """(fenced, unfenced_allowed) for `kvha.planner.FailoverSnapshot`, from what fencing actually
    recorded rather than from the policy, which may have been edited since."""
    if status is None or status.confirmed_at is None:
        return False, False
    if status.strategy == FencingStrategy.NONE.value:
        return False, True
    return True, False


def release_fencing(
    *,
    phase: FailoverPhase,
    status: FencingStatus | None,
    observation: FenceObservation,
    fencing: FencingSpec,
    now: datetime,
) -> FencingStep:
    """The NodeFailover is being deleted: undo what this incident applied (the taint it applied,
    its confirmation annotation, the remediation it owns), whatever the node's health; `holds_nothing`
    says its finalizer may go. Evidence of other incidents is never touched."""
    ctx = _Context.of(phase=phase, status=status, observation=observation, fencing=fencing, now=now)
    return _cleanup(ctx, reason=REASON_RELEASING, subject=f"NodeFailover {ctx.incident.name} is being deleted")


# --- states ------------------------------------------------------------------------------------


def _detected(ctx: _Context) -> FencingStep:
    if ctx.observation.node_healthy:
        return _cleanup(ctx, reason=REASON_FAILOVER_ABORTED, phase=FailoverPhase.ABORTED, subject=_aborted(ctx))
    if ctx.strategy is FencingStrategy.NONE:
        if not ctx.fencing.allow_unfenced_restart:
            return ctx.step(
                phase=FailoverPhase.FAILED,
                reason=REASON_FENCING_FAILED,
                warning=True,
                holds_nothing=True,
                message=FENCING_NONE_MESSAGE,
            )
        return ctx.step(
            phase=FailoverPhase.FENCED,
            reason=REASON_FENCING_CONFIRMED,
            warning=True,
            holds_nothing=True,
            message=f"node {ctx.node} is not fenced (strategy None); only VMs safe to run twice restart",
            started_at=ctx.now,
            confirmed_at=ctx.now,
            confirmed_by=UNFENCED_CONFIRMATION,
        )
    # Entering Fencing posts its Event through the first Fencing step (the phase changes).
    return _fencing(replace(ctx, status=ctx.status.replace(started_at=ctx.now)))


def _fencing(ctx: _Context) -> FencingStep:
    if ctx.observation.node_healthy:
        return _cleanup(ctx, reason=REASON_FAILOVER_ABORTED, phase=FailoverPhase.ABORTED, subject=_aborted(ctx))
    match ctx.strategy:
        case FencingStrategy.REMEDIATION:
            return _fencing_by_remediation(ctx)
        case FencingStrategy.NONE:
            return _detected(ctx)
        case _:
            return _fencing_by_taint(ctx)


@dataclass(frozen=True, slots=True)
class _Wait:
    """Not confirmed yet: what the user is told, and when the confirmation could arrive by itself."""

    reason: str
    message: str
    warning: bool = False
    seconds: float = OBSERVE_INTERVAL


def _fencing_by_taint(ctx: _Context) -> FencingStep:
    node, status = ctx.observation.node, ctx.status
    taint = node.taint(OUT_OF_SERVICE_TAINT_KEY) if node is not None else None
    evidence = _taint_evidence(ctx, taint) if taint is not None else None
    if evidence is not None:
        return _confirmed(ctx, evidence)
    if status.taint_applied:  # authorised earlier; the taint has not landed yet
        if node is None:
            return _confirmed(ctx, f"{status.confirmed_by}; the Node object has since been deleted")
        return ctx.step(
            phase=FailoverPhase.FENCING,
            reason=REASON_FENCING_CONFIRMED,
            message=status.message or "",
            actions=[ApplyOutOfServiceTaint(ctx.node)],
            recheck=OBSERVE_INTERVAL,
        )
    verdict = _watchdog(ctx) if ctx.fencing.confirmation is FenceConfirmation.WATCHDOG else _manual(ctx)
    if isinstance(verdict, _Wait):
        return _waiting(ctx, verdict)
    if node is None:
        return _confirmed(
            ctx,
            f"{verdict}; no taint is needed: Kubernetes deletes the pods of a deleted Node "
            "as it would for the out-of-service taint",
        )
    return ctx.step(
        phase=FailoverPhase.FENCING,
        reason=REASON_FENCING_CONFIRMED,
        message=f"{verdict}; applying the out-of-service taint to node {ctx.node}",
        actions=[ApplyOutOfServiceTaint(ctx.node)],
        recheck=OBSERVE_INTERVAL,
        taint_applied=True,
        confirmed_by=verdict,
    )


def _taint_evidence(ctx: _Context, taint: Taint) -> str | None:
    """What the out-of-service taint on the node proves for this incident, if anything."""
    if ctx.status.taint_applied:  # kvha applied it for this incident, once its confirmation held
        return ctx.status.confirmed_by or "the out-of-service taint kvha applied"
    # timeAdded has whole seconds and detectedAt does not: a taint added within the second of
    # detection reads as older and is ignored, the safe way round.
    if taint.time_added is not None and taint.time_added >= ctx.incident.detected_at:
        return (
            f"the out-of-service taint, applied by someone other than kvha at {format_time(taint.time_added)}, "
            "after the incident was detected"
        )
    return None


def _manual(ctx: _Context) -> str | _Wait:
    """What confirms the node is off (a human's or the platform's word), or how to give it."""
    node = ctx.observation.node
    if node is None:
        return (
            "the Node object was deleted (by an administrator or the cloud provider's node-lifecycle "
            "controller), which kvha takes as confirmation that the machine is gone"
        )
    if node.fence_confirmed == ctx.incident.name:
        return f"Node annotation {FENCE_CONFIRMED_ANNOTATION}={node.fence_confirmed}"
    return _Wait(REASON_FENCING_AWAITING, _confirmation_request(ctx, node), warning=True)


def _confirmation_request(ctx: _Context, node: NodeView) -> str:
    """The exact command an administrator runs once the machine is off, and why what is already on
    the node does not count (an admin who sees an annotation or taint there would wonder)."""
    ignored = []
    if node.fence_confirmed is not None:
        ignored.append(
            f"its annotation {FENCE_CONFIRMED_ANNOTATION}={node.fence_confirmed} does not name this incident"
        )
    if node.has_taint(OUT_OF_SERVICE_TAINT_KEY):
        ignored.append("its out-of-service taint was not applied for this incident")
    note = f" ({'; '.join(ignored)}: ignored)" if ignored else ""
    return (
        f"node {ctx.node} is unhealthy; once it is powered off, confirm with `kubectl annotate node {ctx.node} "
        f"{FENCE_CONFIRMED_ANNOTATION}={ctx.incident.name} --overwrite`; its VMs restart only then{note}"
    )


def _watchdog(ctx: _Context) -> str | _Wait:
    obs = ctx.observation
    timeout = seconds(ctx.fencing.watchdog_timeout)
    detected_at = ctx.incident.detected_at
    out_of_contact_since = max(detected_at, obs.last_heard_from or detected_at)
    deadline = out_of_contact_since + timedelta(seconds=timeout)
    if ctx.now >= deadline:
        return (
            f"no contact with node {ctx.node} since {format_time(out_of_contact_since)}, longer than the "
            f"{format_seconds(timeout)} after which its watchdog resets it"
        )
    # No deadline in the message: it moves with every heartbeat of a node that is still connected,
    # and a changing message would post an Event each time.
    return _Wait(
        REASON_FENCING_STARTED,
        f"waiting for node {ctx.node}'s watchdog: it must be out of contact with the cluster for "
        f"{format_seconds(timeout)} before the out-of-service taint is applied",
        seconds=ctx.seconds_until(deadline),
    )


def _fencing_by_remediation(ctx: _Context) -> FencingStep:
    template = ctx.fencing.remediation_template
    if template is None:
        return ctx.step(
            phase=FailoverPhase.FAILED,
            reason=REASON_FENCING_FAILED,
            warning=True,
            holds_nothing=not _holds_anything(ctx),
            message=REMEDIATION_TEMPLATE_MESSAGE,
        )
    name = ctx.status.remediation_name or ctx.node
    kind = template.remediation_kind
    remediation = ctx.observation.remediation
    ours = remediation is not None and remediation.created_for(ctx.incident)
    if remediation is not None and ours and remediation.succeeded:
        detail = f": {remediation.message}" if remediation.message else ""
        return _confirmed(ctx, f"{kind} {name} reported success{detail}")
    if remediation is not None and remediation.exists and not ours:
        # Medik8s remediators find the node by the object's name, so kvha cannot create its own
        # beside it; a verdict on an object kvha did not create says nothing about this incident.
        foreign = _Wait(
            REASON_FENCING_AWAITING,
            f"{kind} {template.namespace}/{name} exists but was not created by kvha for this incident "
            "(an earlier incident's, or node-healthcheck-operator's): whatever it reports does not fence "
            "this incident, and kvha does not delete it; kvha creates its own once it is gone",
            warning=True,
        )
        return _waiting(ctx, foreign, remediation_name=name)
    if remediation is not None and ours and remediation.failed:
        return ctx.step(
            phase=FailoverPhase.FAILED,
            reason=REASON_FENCING_FAILED,
            warning=True,
            holds_nothing=not _holds_anything(ctx),
            message=f"{kind} {name} reported failure ({remediation.message or 'no message'}); "
            f"node {ctx.node} is not fenced and its VMs were not restarted",
        )
    wait = _Wait(
        REASON_FENCING_STARTED,
        f"waiting for {kind} {name} (from template {template.namespace}/{template.name}) to report success",
        seconds=REMEDIATION_POLL,
    )
    exists = remediation is not None and remediation.exists
    actions = [] if exists else [CreateRemediation(node=ctx.node, template=template, name=name, owner=ctx.incident)]
    return _waiting(ctx, wait, actions=actions, remediation_name=name)


def _waiting(ctx: _Context, wait: _Wait, *, actions: Sequence[FenceAction] = (), **updates: Any) -> FencingStep:
    """Not confirmed yet: keep waiting until the fencing timeout, then fail the incident."""
    timeout = seconds(ctx.fencing.timeout)
    started_at = ctx.status.started_at or ctx.now
    remaining = ctx.seconds_until(started_at + timedelta(seconds=timeout))
    if remaining <= 0:
        return ctx.step(
            phase=FailoverPhase.FAILED,
            reason=REASON_FENCING_TIMEOUT,
            warning=True,
            holds_nothing=not _holds_anything(ctx),
            message=f"node {ctx.node} was not fenced within {format_seconds(timeout)} ({wait.message}); "
            "its VMs were not restarted",
        )
    return ctx.step(
        phase=FailoverPhase.FENCING,
        reason=wait.reason,
        message=wait.message,
        warning=wait.warning,
        actions=actions,
        recheck=min(wait.seconds, OBSERVE_INTERVAL, remaining),
        **updates,
    )


def _confirmed(ctx: _Context, confirmed_by: str) -> FencingStep:
    return ctx.step(
        phase=FailoverPhase.FENCED,
        reason=REASON_FENCING_CONFIRMED,
        message=f"node {ctx.node} is fenced ({confirmed_by}); its VMs may be restarted elsewhere",
        confirmed_at=ctx.now,
        confirmed_by=confirmed_by,
    )


def _fenced(ctx: _Context) -> FencingStep:
    """Fenced, Restarting, Completed or Failed: hold everything until the node recovers or is deleted."""
    obs = ctx.observation
    if obs.node is not None and not obs.node_healthy:
        return FencingStep(ctx.phase, ctx.status, holds_nothing=not _holds_anything(ctx))
    subject = f"node {ctx.node} recovered" if obs.node is not None else f"node {ctx.node} was deleted"
    return _cleanup(ctx, reason=REASON_NODE_RECOVERED, subject=subject, recovered=True)


def _aborted(ctx: _Context) -> str:
    return f"node {ctx.node} recovered before it was fenced and no VM was restarted"


def _holds_anything(ctx: _Context) -> bool:
    remediation = ctx.observation.remediation
    node = ctx.observation.node
    return (
        (remediation is not None and remediation.created_for(ctx.incident))
        or (ctx.status.taint_applied and not ctx.status.taint_removed)
        or (node is not None and node.fence_confirmed == ctx.incident.name)
    )


def _cleanup(
    ctx: _Context, *, reason: str, subject: str, phase: FailoverPhase | None = None, recovered: bool = False
) -> FencingStep:
    """Undo what fencing applied. Safe to repeat; `holds_nothing` once none of it is left.

    `recovered`: the fenced node is back (or gone), so this incident's spell of ill health is over;
    recorded once, it lets a new failure of the node open a new incident while this one still
    waits to undo its fencing."""
    obs, status = ctx.observation, ctx.status
    node = obs.node
    actions: list[FenceAction] = []
    pending: list[str] = []
    updates: dict[str, Any] = {}
    if recovered and status.recovered_at is None:
        updates["recovered_at"] = ctx.now
    if obs.remediation is not None and obs.remediation.created_for(ctx.incident):
        name = status.remediation_name or ctx.node
        template = ctx.fencing.remediation_template
        if template is not None:
            actions.append(DeleteRemediation(node=ctx.node, name=name, template=template, uid=obs.remediation.uid))
            pending.append(f"deleting remediation {name}")
        else:
            pending.append(f"remediation {name} must be deleted by hand: the policy no longer names its template")
    if status.taint_applied and not status.taint_removed:
        if node is None or not node.has_taint(OUT_OF_SERVICE_TAINT_KEY):
            updates["taint_removed"] = True
        elif obs.taint_shared_with:
            pending.append(
                f"keeping the out-of-service taint while NodeFailover {', '.join(obs.taint_shared_with)} "
                "of the same node is unfinished"
            )
        elif obs.pods_remaining_on_node == 0:
            actions.append(RemoveOutOfServiceTaint(ctx.node))
            pending.append("removing the out-of-service taint")
        else:
            pending.append(
                "waiting for the pods still bound to it to be deleted (DaemonSet and static pods aside) "
                "before removing the out-of-service taint"
            )
    if node is not None and node.fence_confirmed == ctx.incident.name:
        actions.append(RemoveFenceConfirmation(ctx.node, ctx.incident.name))
        pending.append(f"removing its {FENCE_CONFIRMED_ANNOTATION} annotation")
    message = f"{subject}; undoing fencing: {', '.join(pending)}" if pending else subject
    return ctx.step(
        phase=phase or ctx.phase,
        reason=reason,
        message=message,
        actions=actions,
        recheck=OBSERVE_INTERVAL if pending else None,
        holds_nothing=not pending,
        **updates,
    )
