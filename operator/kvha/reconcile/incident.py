"""One step of a node incident: detection → storm guard → fencing → restarts → completion.

The NodeFailover's status is the whole memory of the incident. Each step reads it with a fresh
snapshot of the cluster and returns the next status and the actions; the handler writes the status
*before* acting, so a crash between the two repeats an idempotent action rather than losing one.

That memory includes a copy of the policy's spec and the VMs it selected, taken when the incident
opens: an incident is driven from its copy, so deleting, editing or briefly invalidating the
HAPolicy mid-incident neither fails it nor abandons its VMs. Incidents opened by a kvha without the
copy follow the live policy, and record it at their first step that sees a valid one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from kvha.constants import COND_COMPLETED, COND_FENCED, REASON_FAILOVER_COMPLETED, REASON_STORM
from kvha.detection import (
    Health,
    Instant,
    NodeSightings,
    StormState,
    Verdict,
    incident_can_close,
    last_heard_from,
    storm_from_nodes,
)
from kvha.fencing import (
    ApplyOutOfServiceTaint,
    CreateRemediation,
    FenceAction,
    FenceObservation,
    IncidentRef,
    RemediationObservation,
    pods_holding_node,
    restart_clearance,
    step_fencing,
)
from kvha.models.conditions import set_condition
from kvha.models.durations import format_seconds
from kvha.models.events import EventNote
from kvha.models.hapolicy import FencingSpec, FencingStrategy, HAPolicySpec
from kvha.models.nodefailover import (
    FailoverPhase,
    FailoverVM,
    FencingStatus,
    NodeFailoverSpec,
    NodeFailoverStatus,
    VMState,
)
from kvha.models.views import LeaseView, NodeView, PodView, VMIView, VMView
from kvha.placement import PodTopology
from kvha.planner import FailoverSnapshot, NodeCapacity, RestartVM, initial_entries, plan_failover
from kvha.protection import selects

STORM_RECHECK = 5.0
CACHE_SYNC_RECHECK = 1.0


@dataclass(frozen=True)
class IncidentSnapshot:
    name: str
    uid: str
    """The NodeFailover's uid: what kvha's remediation names as its owner."""
    spec: NodeFailoverSpec
    status: NodeFailoverStatus
    policy: HAPolicySpec | None
    """The live policy; None when it was deleted or is invalid. The step follows the incident's
    recorded copy (`incident_policy`) and uses this one only for incidents without a copy."""
    node: NodeView | None
    lease: LeaseView | None
    all_nodes: Sequence[NodeView]
    leases: Mapping[str, LeaseView]
    """Every node and Lease, for the storm guard's fresh counts."""
    recorded_storm: StormState
    """The storm as the policy's status records it (`kvha.detection.recorded_storm`): only its
    memory of a storm and its end is used, the counts are taken again in the step."""
    remediation: RemediationObservation | None
    pods_on_node: Sequence[PodView]
    vms: Mapping[str, VMView]
    """The incident's VMs by `namespace/name` (`incident_vms`)."""
    vmis: Mapping[str, VMIView]
    launcher_pods: Mapping[str, Collection[PodView]]
    nodes: Sequence[NodeCapacity]
    """Healthy nodes the VMs may move to, with what is free on them."""
    unfenced_safe: Collection[str]
    now: datetime
    monotonic: float
    """kvha's monotonic clock at `now`: what detection measures durations with."""
    seen: NodeSightings
    """Since when kvha has observed each of the node's signals with its current value."""
    sightings: Mapping[str, NodeSightings]
    """The same for every node, for the storm guard's fresh counts."""
    caches_synced: bool
    """Every watch detection judges from has delivered its initial list (see `kvha.detection.observed`)."""
    topology: PodTopology | None = None
    """Every node and bound pod, for pod (anti-)affinity and topology spread."""
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """By namespace: what the policy's `restart.priorityLimits` select on."""

    @property
    def instant(self) -> Instant:
        return Instant(monotonic=self.monotonic, wall=self.now)


@dataclass(frozen=True)
class IncidentStep:
    status: NodeFailoverStatus
    fence_actions: tuple[FenceAction, ...] = ()
    restart_actions: tuple[RestartVM, ...] = ()
    events: tuple[EventNote, ...] = ()
    recheck_after: float | None = None
    restored: tuple[FailoverVM, ...] = ()
    """Entries that reached Running in this step (for metrics)."""
    failed: tuple[FailoverVM, ...] = ()
    """Entries whose restart failed in this step (for metrics)."""
    fenced_after: float | None = None
    """Seconds fencing took, when it was confirmed in this step."""
    finished: bool = False
    """Terminal and nothing of fencing left to undo: the handler stops driving it."""
    outcome: FailoverPhase | None = field(default=None)
    """Set when the incident reaches a terminal phase in this step."""


def incident_policy(status: NodeFailoverStatus, live: HAPolicySpec | None) -> HAPolicySpec | None:
    """The policy an incident follows: its recorded copy, or the live one if it has none."""
    return status.policy if status.policy is not None else live


def incident_vms(
    *,
    status: NodeFailoverStatus,
    policy: HAPolicySpec | None,
    vms: Iterable[VMView],
    namespace_labels: Mapping[str, Mapping[str, str]],
) -> dict[str, VMView]:
    """The VMs an incident deals with, by `namespace/name`: before it opens, those its policy
    selects; once open, exactly those recorded in its entries, whatever the policy selects now
    (narrowing `vmSelector` mid-incident must not abandon a VM that was protected when its host died)."""
    if status.started_at is not None:
        recorded = {e.key for e in status.vms}
        return {vm.key: vm for vm in vms if vm.key in recorded}
    if policy is None:
        return {}
    return {vm.key: vm for vm in vms if selects(policy, vm, namespace_labels.get(vm.namespace, {}))}


def advance_incident(snap: IncidentSnapshot) -> IncidentStep:
    status = snap.status
    if not snap.caches_synced:
        # A node missing from a half-filled cache looks deleted, its Lease absent: no step at all.
        return IncidentStep(status=status, recheck_after=CACHE_SYNC_RECHECK)
    policy = incident_policy(status, snap.policy)
    status = _with_copies(snap, status, policy)
    # Counted afresh only while the step may still fence or restart: a finished-but-undoing
    # incident (say, waiting for pods to leave a recovered node) would pay for every node each tick.
    may_act = not status.phase.terminal or any(e.state is VMState.WAITING_FOR_CAPACITY for e in status.vms)
    storm = (
        storm_from_nodes(
            nodes=snap.all_nodes,
            leases=snap.leases,
            sightings=snap.sightings,
            policy=policy,
            previous=snap.recorded_storm,
            now=snap.instant,
        )
        if policy is not None and may_act
        else snap.recorded_storm
    )
    policy_fencing = policy.fencing if policy else _recorded_fencing(status.fencing)
    detection = policy.detection if policy else None
    verdict_healthy = False
    if snap.node is not None and detection is not None:
        verdict_healthy, _ = incident_can_close(
            node=snap.node, lease=snap.lease, detection=detection, seen=snap.seen, now=snap.instant
        )
    observation = FenceObservation(
        node_name=snap.spec.node_name,
        node=snap.node,
        node_healthy=verdict_healthy,
        incident=IncidentRef(name=snap.name, uid=snap.uid, detected_at=snap.spec.detected_at),
        remediation=snap.remediation,
        pods_remaining_on_node=pods_holding_node(snap.pods_on_node),
        last_heard_from=last_heard_from(node=snap.node, lease=snap.lease, seen=snap.seen),
    )
    entries = list(status.vms)
    if policy is None and not status.phase.terminal:
        return _policy_gone(snap, status)

    if (
        storm.blocks_action
        and not status.phase.terminal
        and not verdict_healthy
        and status.phase in (FailoverPhase.DETECTED, FailoverPhase.FENCING)
    ):
        return _held_by_storm(snap, status, storm)

    fence = step_fencing(
        phase=status.phase, status=status.fencing, observation=observation, fencing=policy_fencing, now=snap.now
    )
    phase = fence.phase
    events = list(fence.events)
    rechecks = [fence.recheck_after]
    restart_actions: tuple[RestartVM, ...] = ()
    fenced_after = None
    if fence.status.confirmed_at and not (status.fencing and status.fencing.confirmed_at):
        started = fence.status.started_at or snap.spec.detected_at
        fenced_after = (fence.status.confirmed_at - started).total_seconds()

    held_message = None
    if _plans(phase, fence.status, entries) and policy is not None:
        if storm.blocks_action:
            held_message = f"restarts held by the storm guard: {storm.message}"
            if status.message != held_message:
                events.append(EventNote(REASON_STORM, held_message, "Warning"))
            rechecks.append(min(storm.recheck_after or STORM_RECHECK, STORM_RECHECK))
        else:
            fenced, unfenced_allowed = restart_clearance(fence.status)
            plan = plan_failover(
                FailoverSnapshot(
                    failed_node=snap.spec.node_name,
                    entries=entries,
                    vms=snap.vms,
                    vmis=snap.vmis,
                    launcher_pods=snap.launcher_pods,
                    nodes=snap.nodes,
                    fenced=fenced,
                    unfenced_allowed=unfenced_allowed,
                    unfenced_safe=snap.unfenced_safe,
                    restart=policy.restart,
                    now=snap.now,
                    topology=snap.topology,
                    namespace_labels=snap.namespace_labels,
                )
            )
            entries = list(plan.entries)
            restart_actions = plan.actions
            events += plan.events
            rechecks.append(plan.recheck_after)
            in_flight = any(e.state in (VMState.PENDING, VMState.RESTARTING) for e in entries)
            phase = FailoverPhase.RESTARTING if in_flight else FailoverPhase.COMPLETED

    new_status = _summarise(
        snap,
        status,
        phase=phase,
        fencing=fence.status,
        entries=entries,
        message=held_message or _message(snap, phase, fence.status.message, entries),
    )
    outcome = None
    if phase.terminal and status.completed_at is None:
        outcome = phase
        new_status = new_status.replace(completed_at=snap.now)
        if phase is FailoverPhase.COMPLETED:
            events.append(EventNote(REASON_FAILOVER_COMPLETED, new_status.message or "", "Normal"))
    before = {e.key: e.state for e in status.vms}
    restored = tuple(e for e in entries if e.state is VMState.RUNNING and before.get(e.key) is not VMState.RUNNING)
    failed = tuple(e for e in entries if e.state is VMState.FAILED and before.get(e.key) is not VMState.FAILED)
    return IncidentStep(
        status=new_status,
        fence_actions=fence.actions,
        restart_actions=restart_actions,
        events=tuple(events),
        recheck_after=min((r for r in rechecks if r is not None), default=None),
        restored=restored,
        failed=failed,
        fenced_after=fenced_after,
        finished=phase.terminal and fence.holds_nothing and not new_status.waiting,
        outcome=outcome,
    )


def _with_copies(snap: IncidentSnapshot, status: NodeFailoverStatus, policy: HAPolicySpec | None) -> NodeFailoverStatus:
    """The status with the copies the incident is driven from: the policy (recorded once), and
    when the incident opens, the VMs that policy selects on the failed node."""
    if policy is None:
        return status
    if status.policy is None:
        status = status.replace(policy=policy)
    if status.started_at is None:
        entries = initial_entries(
            vms=snap.vms.values(),
            vmis=snap.vmis,
            failed_node=snap.spec.node_name,
            default_priority=policy.restart.default_priority,
            priority_limits=policy.restart.priority_limits,
            namespace_labels=snap.namespace_labels,
        )
        status = status.replace(started_at=snap.now, vms=entries)
    return status


def fences(step: IncidentStep) -> bool:
    """Whether the step would fence the node: apply the out-of-service taint (on a confirmation,
    by hand or by the watchdog deadline) or create a remediation. Such a step is taken only after a
    fresh read of the Node and its Lease agrees (`fresh_read_agrees`)."""
    return any(isinstance(a, ApplyOutOfServiceTaint | CreateRemediation) for a in step.fence_actions)


def fresh_read_agrees(*, verdict: Verdict | None, to_fence: bool) -> bool:
    """Whether the Node and Lease just read from the API (not the cache) still show the node
    Unhealthy. A cache can lag behind the API by as long as the operator lags behind its watches;
    a node that looks dead only in the cache must get no incident and no fencing.

    `verdict` is None when the Node no longer exists: no reason to open an incident (a deleted
    node is no longer watched), while an incident's fencing rests on the deletion as the fencing
    state machine decides (`to_fence`).
    """
    if verdict is None:
        return to_fence
    return verdict.health is Health.UNHEALTHY


def _plans(phase: FailoverPhase, fencing: FencingStatus, entries: Sequence[FailoverVM]) -> bool:
    """Restarts are planned once fenced, and after completion for as long as VMs wait for
    capacity: a Completed incident whose VMs did not all fit keeps placing them as room appears."""
    if phase in (FailoverPhase.FENCED, FailoverPhase.RESTARTING):
        return True
    waiting = any(e.state is VMState.WAITING_FOR_CAPACITY for e in entries)
    return phase is FailoverPhase.COMPLETED and waiting and fencing.confirmed_at is not None


def _recorded_fencing(recorded: FencingStatus | None) -> FencingSpec:
    """Without a policy, only undoing what was applied remains; the strategy recorded in status
    says what that was (Remediation cannot be undone without its template: the step says so)."""
    strategy = FencingStrategy(recorded.strategy) if recorded else FencingStrategy.OUT_OF_SERVICE_TAINT
    if strategy is FencingStrategy.REMEDIATION:
        strategy = FencingStrategy.OUT_OF_SERVICE_TAINT
    return FencingSpec(strategy=strategy, allow_unfenced_restart=strategy is FencingStrategy.NONE)


def _policy_gone(snap: IncidentSnapshot, status: NodeFailoverStatus) -> IncidentStep:
    message = f"HAPolicy {snap.spec.policy_name} was deleted or is invalid; no further VM is restarted"
    new_status = _summarise(
        snap, status, phase=FailoverPhase.FAILED, fencing=status.fencing, entries=list(status.vms), message=message
    )
    new_status = new_status.replace(completed_at=snap.now)
    return IncidentStep(
        status=new_status,
        events=(EventNote("PolicyGone", message, "Warning"),),
        outcome=FailoverPhase.FAILED,
        recheck_after=STORM_RECHECK,
    )


def _held_by_storm(snap: IncidentSnapshot, status: NodeFailoverStatus, storm: StormState) -> IncidentStep:
    message = f"held by the storm guard: {storm.message}"
    events = () if status.message == message else (EventNote(REASON_STORM, message, "Warning"),)
    new_status = _summarise(
        snap, status, phase=status.phase, fencing=status.fencing, entries=list(status.vms), message=message
    )
    return IncidentStep(
        status=new_status, events=events, recheck_after=min(storm.recheck_after or STORM_RECHECK, STORM_RECHECK)
    )


def _message(
    snap: IncidentSnapshot, phase: FailoverPhase, fencing_message: str | None, entries: Sequence[FailoverVM]
) -> str:
    if phase in (FailoverPhase.RESTARTING, FailoverPhase.COMPLETED):
        running = sum(1 for e in entries if e.state is VMState.RUNNING)
        waiting = sum(1 for e in entries if e.state is VMState.WAITING_FOR_CAPACITY)
        restartable = sum(1 for e in entries if e.state is not VMState.SKIPPED)
        text = f"{running} of {restartable} VMs running again"
        if waiting:
            text += f", {waiting} waiting for capacity"
        if failed := sum(1 for e in entries if e.state is VMState.FAILED):
            text += f", {failed} could not be restarted"
        if phase is FailoverPhase.COMPLETED:
            # From the recorded completion once there is one: a message that grew with the clock
            # rewrote the status of every completed incident at each step, and each write woke the
            # next step (at 100 nodes, a status write a second per dead host, for as long as it stays dead).
            took = ((snap.status.completed_at or snap.now) - snap.spec.detected_at).total_seconds()
            text += f"; completed {format_seconds(took)} after detection"
        return text
    return fencing_message or ""


def _summarise(
    snap: IncidentSnapshot,
    status: NodeFailoverStatus,
    *,
    phase: FailoverPhase,
    fencing: FencingStatus | None,
    entries: list[FailoverVM],
    message: str,
) -> NodeFailoverStatus:
    fenced = fencing is not None and fencing.confirmed_at is not None
    conditions = set_condition(
        status.conditions,
        type_=COND_FENCED,
        status="True" if fenced else "False",
        reason="FencingConfirmed" if fenced else ("Fencing" if phase is FailoverPhase.FENCING else "NotFenced"),
        message=(fencing.message if fencing and fencing.message else "")
        if not fenced
        else f"confirmed by {fencing.confirmed_by}"
        if fencing
        else "",
        now=snap.now,
    )
    conditions = set_condition(
        conditions,
        type_=COND_COMPLETED,
        status="True" if phase.terminal else "False",
        reason=phase.value,
        message=message,
        now=snap.now,
    )
    return status.replace(
        phase=phase,
        fencing=fencing,
        vms=entries,
        total=len(entries),
        restored=sum(1 for e in entries if e.state is VMState.RUNNING),
        waiting=sum(1 for e in entries if e.state is VMState.WAITING_FOR_CAPACITY),
        message=message,
        conditions=conditions,
    )
