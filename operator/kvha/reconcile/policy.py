"""One evaluation of an HAPolicy: which nodes it watches are dead, whether a storm forbids acting,
and which incidents to open; with the latest admission control result (`kvha.reconcile.admission`,
computed apart because it is slow) carried over into the status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from kvha.constants import (
    COND_FAILOVER_CAPACITY,
    COND_READY,
    COND_RECOVERED_NODE_TAINTED,
    COND_STORM_GUARD,
    OUT_OF_SERVICE_TAINT_KEY,
    REASON_CAPACITY_OK,
    REASON_CAPACITY_SHORT,
    REASON_INVALID,
    REASON_NO_STORM,
    REASON_NO_TAINT_REMAINS,
    REASON_STORM,
    REASON_TAINT_REMAINS,
    REASON_VALID,
)
from kvha.detection import (
    Health,
    Instant,
    NodeSightings,
    StormState,
    Verdict,
    assess_watched,
    recorded_storm,
    storm_guard,
)
from kvha.models.conditions import condition_status, set_condition
from kvha.models.events import EventNote
from kvha.models.hapolicy import (
    FailoverPhase,
    FailoverRef,
    HAPolicySpec,
    HAPolicyStatus,
    TaintedNode,
    UnprotectableCount,
)
from kvha.models.names import object_name
from kvha.models.timeutil import format_time
from kvha.models.views import LeaseView, NodeView
from kvha.reconcile.admission import Admission

RECHECK_SECONDS = 10.0
CACHE_SYNC_RECHECK = 1.0
TAINT_REMOVAL_GRACE = 120.0
"""Seconds a recovered node may keep the out-of-service taint before the policy says so: undoing
fencing takes a step or two once the incident has seen the node healthy for healthyDelay, so a
taint still there after this waits for something (a pod that does not leave, a failed call)."""


@dataclass(frozen=True)
class FailoverRecord:
    """What the policy needs to know of each NodeFailover (from the operator's index)."""

    name: str
    node: str
    policy: str
    phase: FailoverPhase
    detected_at: datetime | None
    waiting: int = 0
    finished: bool = False
    """Terminal and nothing of its fencing still held: the node recovered or its fencing was undone."""
    recovered: bool = False
    """The incident saw its node healthy again (its fencing may still be being undone)."""

    @property
    def active(self) -> bool:
        return not self.phase.terminal


@dataclass(frozen=True)
class NewIncident:
    name: str
    node: str
    reason: str
    detected_at: datetime


@dataclass(frozen=True)
class PolicySnapshot:
    name: str
    generation: int | None
    policy: HAPolicySpec | None
    invalid_message: str | None
    status: HAPolicyStatus
    nodes: Sequence[NodeView]
    leases: Mapping[str, LeaseView]
    admission: Admission | None
    """The latest admission control of this policy; None until the first one is done (the status
    then keeps the protection figures it had)."""
    failovers: Sequence[FailoverRecord]
    now: datetime
    monotonic: float
    """kvha's monotonic clock at `now`: what detection measures durations with."""
    sightings: Mapping[str, NodeSightings]
    """By node name: since when kvha has observed each signal's current value."""
    caches_synced: bool
    """Every watch detection judges from has delivered its initial list (see `kvha.detection.observed`)."""

    @property
    def instant(self) -> Instant:
        return Instant(monotonic=self.monotonic, wall=self.now)


@dataclass(frozen=True)
class PolicyStep:
    status: HAPolicyStatus
    open_incidents: tuple[NewIncident, ...] = ()
    events: tuple[EventNote, ...] = ()
    storm: StormState | None = None
    healthy: frozenset[str] = frozenset()
    """The watched nodes detection calls Healthy: where admission control may place VMs."""
    watch_closely: frozenset[str] = frozenset()
    """The watched nodes that are not Healthy: a renewal of their Lease may change the verdict, so
    it must wake the next evaluation (a Healthy node's renewal cannot)."""
    waiting: int = 0
    tainted_recovered: int = 0
    """Nodes Ready again that still carry an incident's taint after `TAINT_REMOVAL_GRACE` (a metric)."""
    recheck_after: float | None = RECHECK_SECONDS


def healthy_nodes(
    *,
    nodes: Sequence[NodeView],
    leases: Mapping[str, LeaseView],
    sightings: Mapping[str, NodeSightings],
    policy: HAPolicySpec,
    now: Instant,
) -> list[NodeView]:
    """Watched nodes that detection calls Healthy: the only ones a VM may be restarted on."""
    verdicts = assess_watched(nodes=nodes, leases=leases, sightings=sightings, policy=policy, now=now)
    return [n for n in nodes if n.name in verdicts and verdicts[n.name].health is Health.HEALTHY]


def failover_name(*, policy: str, node: str, detected_at: datetime) -> str:
    """Deterministic, so a leader that crashed after creating it finds it again (409), and
    readable in `kubectl get nodefailovers`; hashed where a long node and policy name would not fit."""
    return object_name(node, policy, f"{detected_at:%Y%m%d-%H%M%S}")


def evaluate_policy(snap: PolicySnapshot) -> PolicyStep:
    if snap.policy is None:
        return _invalid(snap)
    if not snap.caches_synced:
        # Half-filled caches would read as silent nodes: no verdict, no count, no status change.
        return PolicyStep(status=snap.status, recheck_after=CACHE_SYNC_RECHECK)
    policy = snap.policy
    verdicts = assess_watched(
        nodes=snap.nodes, leases=snap.leases, sightings=snap.sightings, policy=policy, now=snap.instant
    )
    watched = [n for n in snap.nodes if n.name in verdicts]
    unhealthy = {name: v for name, v in verdicts.items() if v.health is Health.UNHEALTHY}
    storm = storm_guard(
        unhealthy_nodes=len(unhealthy),
        watched_nodes=len(watched),
        spec=policy.storm_guard,
        previous=recorded_storm(snap.status),
        now=snap.now,
    )
    mine = [f for f in snap.failovers if f.policy == snap.name]
    opened = () if storm.blocks_action else _incidents_to_open(snap.name, unhealthy, mine)
    status = _status(snap, storm=storm, watched=len(watched), unhealthy=len(unhealthy), mine=mine)
    events = _events(snap.status, status, storm)
    overdue = _overdue(status.tainted_nodes, snap.now)
    checks = [RECHECK_SECONDS, storm.recheck_after] + [v.recheck_after for v in verdicts.values()]
    return PolicyStep(
        status=status,
        open_incidents=opened,
        events=events,
        storm=storm,
        healthy=frozenset(n.name for n in watched if verdicts[n.name].health is Health.HEALTHY),
        watch_closely=frozenset(name for name, v in verdicts.items() if v.health is not Health.HEALTHY),
        waiting=sum(f.waiting for f in mine),
        tainted_recovered=len(overdue),
        recheck_after=min((c for c in checks if c is not None and c > 0), default=RECHECK_SECONDS),
    )


def _incidents_to_open(
    policy: str, unhealthy: Mapping[str, Verdict], failovers: Sequence[FailoverRecord]
) -> tuple[NewIncident, ...]:
    """An Unhealthy node gets an incident unless one is active for it, or the last one belongs to
    this same spell of ill health (a completed failover of a node that stays dead must not start
    again): it was opened after the spell began, or it still holds the node fenced and has not
    seen the node recover. The second test needs no clock, so it holds across an operator
    restart, after which kvha counts the spell from its first sight of the node. A node that
    recovered and failed again is a new spell, even while the old incident still waits to undo
    its fencing (for example for a pod that keeps running on the node)."""
    opened = []
    for node, verdict in sorted(unhealthy.items()):
        since = verdict.detected_at
        if since is None:
            continue
        theirs = [f for f in failovers if f.node == node]
        if any(f.active or not (f.finished or f.recovered) for f in theirs):
            continue
        if any(f.detected_at is not None and f.detected_at >= since for f in theirs):
            continue
        opened.append(
            NewIncident(
                name=failover_name(policy=policy, node=node, detected_at=since),
                node=node,
                reason=verdict.summary,
                detected_at=since,
            )
        )
    return tuple(opened)


def _tainted_nodes(
    nodes: Sequence[NodeView], mine: Sequence[FailoverRecord], recorded: Sequence[TaintedNode], now: datetime
) -> list[TaintedNode]:
    """Ready nodes with the out-of-service taint whose incident saw them recover and has not finished
    undoing its fencing; `since` carried over from the policy's status, so the policy's own
    observations (not a node's clock) say how long."""
    by_name = {n.name: n for n in nodes}
    before = {(t.node, t.failover): t.since for t in recorded}
    tainted = []
    for record in mine:
        node = by_name.get(record.node)
        if not record.recovered or record.finished or node is None or not node.has_taint(OUT_OF_SERVICE_TAINT_KEY):
            continue
        ready = node.condition("Ready")
        if ready is None or ready.status != "True":
            continue
        since = before.get((record.node, record.name), now)
        tainted.append(TaintedNode(node=record.node, failover=record.name, since=since))
    return sorted(tainted, key=lambda t: (t.node, t.failover))


def _overdue(tainted: Sequence[TaintedNode], now: datetime) -> list[TaintedNode]:
    return [t for t in tainted if (now - t.since).total_seconds() >= TAINT_REMOVAL_GRACE]


def _tainted_condition(tainted: Sequence[TaintedNode], now: datetime) -> tuple[Literal["True", "False"], str, str]:
    overdue = _overdue(tainted, now)
    if not overdue:
        return "False", REASON_NO_TAINT_REMAINS, "no node that is Ready again carries the out-of-service taint"
    described = "; ".join(
        f"node {t.node} (NodeFailover {t.failover}, since {format_time(t.since)})" for t in overdue[:10]
    )
    return (
        "True",
        REASON_TAINT_REMAINS,
        f"{len(overdue)} node(s) Ready again still carry the out-of-service taint: {described}; "
        "its NodeFailover's message says what it waits for",
    )


def _status(
    snap: PolicySnapshot, *, storm: StormState, watched: int, unhealthy: int, mine: Sequence[FailoverRecord]
) -> HAPolicyStatus:
    now, generation = snap.now, snap.generation
    admission = snap.admission
    # Until the first admission control is done, the protection figures stay what they were.
    protected = admission.protected if admission else snap.status.protected_vms
    capped = admission.capped if admission else snap.status.priority_capped_vms
    conditions = set_condition(
        snap.status.conditions,
        type_=COND_READY,
        status="True",
        reason=REASON_VALID,
        message=f"protecting {protected} VMs on {watched} watched nodes"
        + (
            f"; {capped} of them claim a priority above restart.priorityLimits and restart at the limit"
            if capped
            else ""
        ),
        now=now,
        generation=generation,
    )
    if admission is not None and snap.policy is not None:
        target = snap.policy.admission_control.host_failures_to_tolerate
        enough = admission.capacity >= target
        conditions = set_condition(
            conditions,
            type_=COND_FAILOVER_CAPACITY,
            status="True" if enough else "False",
            reason=REASON_CAPACITY_OK if enough else REASON_CAPACITY_SHORT,
            message=(
                f"the cluster can absorb {admission.capacity} host failure(s) for the protected VMs; "
                f"the policy asks for {target}"
            ),
            now=now,
            generation=generation,
        )
    conditions = set_condition(
        conditions,
        type_=COND_STORM_GUARD,
        status="True" if storm.blocks_action else "False",
        reason=REASON_STORM if storm.blocks_action else REASON_NO_STORM,
        message=storm.message,
        now=now,
        generation=generation,
    )
    tainted = _tainted_nodes(snap.nodes, mine, snap.status.tainted_nodes, now)
    tainted_status, tainted_reason, tainted_message = _tainted_condition(tainted, now)
    conditions = set_condition(
        conditions,
        type_=COND_RECOVERED_NODE_TAINTED,
        status=tainted_status,
        reason=tainted_reason,
        message=tainted_message,
        now=now,
        generation=generation,
    )
    active = [f for f in mine if f.active]
    finished = sorted((f for f in mine if not f.active), key=lambda f: f.detected_at or now)
    last = finished[-1] if finished else None
    figures = (
        {
            "protected_vms": protected,
            "unprotectable_vms": sum(admission.unprotectable.values()),
            "unprotectable_reasons": [
                UnprotectableCount(reason=r, count=c) for r, c in sorted(admission.unprotectable.items())
            ],
            "priority_capped_vms": capped,
            "failover_capacity": admission.capacity,
        }
        if admission
        else {}
    )
    return snap.status.replace(
        **figures,
        observed_generation=generation,
        conditions=conditions,
        watched_nodes=watched,
        unhealthy_nodes=unhealthy,
        active_failovers=[FailoverRef(name=f.name, node=f.node, phase=f.phase) for f in active],
        active_failover_count=len(active),
        last_failover=FailoverRef(name=last.name, node=last.node, phase=last.phase) if last else None,
        last_failover_time=last.detected_at if last else None,
        storm_ended_at=storm.ended_at,
        tainted_nodes=tainted,
    )


def _events(before: HAPolicyStatus, after: HAPolicyStatus, storm: StormState) -> tuple[EventNote, ...]:
    """Events on transitions only: the storm guard engaging or lifting, capacity falling short."""
    events = []
    was_storm = condition_status(before.conditions, COND_STORM_GUARD) == "True"
    if storm.blocks_action != was_storm:
        events.append(
            EventNote(
                REASON_STORM if storm.blocks_action else REASON_NO_STORM,
                storm.message,
                "Warning" if storm.blocks_action else "Normal",
            )
        )
    was_tainted = condition_status(before.conditions, COND_RECOVERED_NODE_TAINTED) == "True"
    if condition_status(after.conditions, COND_RECOVERED_NODE_TAINTED) == "True" and not was_tainted:
        message = next(c.message for c in after.conditions if c.type == COND_RECOVERED_NODE_TAINTED)
        events.append(EventNote(REASON_TAINT_REMAINS, message, "Warning"))
    was_short = condition_status(before.conditions, COND_FAILOVER_CAPACITY) == "False"
    now_short = condition_status(after.conditions, COND_FAILOVER_CAPACITY) == "False"
    if now_short and not was_short:
        message = next(c.message for c in after.conditions if c.type == COND_FAILOVER_CAPACITY)
        events.append(EventNote(REASON_CAPACITY_SHORT, message, "Warning"))
    return tuple(events)


def _invalid(snap: PolicySnapshot) -> PolicyStep:
    conditions = set_condition(
        snap.status.conditions,
        type_=COND_READY,
        status="False",
        reason=REASON_INVALID,
        message=snap.invalid_message or "invalid policy",
        now=snap.now,
        generation=snap.generation,
    )
    status = snap.status.replace(conditions=conditions, observed_generation=snap.generation)
    events = (
        ()
        if condition_status(snap.status.conditions, COND_READY) == "False"
        else (EventNote(REASON_INVALID, snap.invalid_message or "invalid policy", "Warning"),)
    )
    return PolicyStep(status=status, events=events)
