"""Fencing never reaches Fenced without the confirmation its strategy demands, given for this
incident, whatever the world does in between (confirmations, deletions, recoveries, a remediator's
verdicts, failed API calls) and whatever an earlier incident or another tool left on the node (an
out-of-service taint, a kvha.io/fence-confirmed annotation, a Succeeded remediation)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from core.strategies import NOW, OUT_OF_SERVICE, ago, make_node
from core.test_fencing import CONFIRMED, INCIDENT, MANUAL, REMEDIATION, UNFENCED, WATCHDOG
from kvha.fencing import (
    ApplyOutOfServiceTaint,
    CreateRemediation,
    DeleteRemediation,
    FenceAction,
    FenceObservation,
    RemediationObservation,
    RemoveFenceConfirmation,
    RemoveOutOfServiceTaint,
    restart_clearance,
    step_fencing,
)
from kvha.models.hapolicy import FenceConfirmation, FencingSpec, FencingStrategy
from kvha.models.nodefailover import FailoverPhase, FencingStatus

HAPPENINGS = (
    "nothing",
    "annotate",
    "admin-taints",
    "delete-node",
    "recover",
    "relapse",
    "still-talking",
    "remediation-succeeds",
    "remediation-fails",
    "remediation-vanishes",
    "pods-drain",
    "stale-annotation",
    "foreign-remediation-succeeds",
)
LEFTOVERS = ("taint", "old-taint", "annotation-true", "annotation-false", "annotation-other", "remediation")
"""What may be on the node before this incident starts: kvha's taint from an earlier incident (no
timeAdded), someone's taint from before detection, stale annotations, a Succeeded remediation of
node-healthcheck-operator or of an earlier incident."""
FOREIGN_SUCCESS = RemediationObservation(exists=True, succeeded=True, uid="nhc-remediation", owner_uid=None)
FENCED_PHASES = (FailoverPhase.FENCED, FailoverPhase.RESTARTING, FailoverPhase.COMPLETED)


@dataclass
class Node:
    """The world around one failed node, changed by happenings and by fencing's own actions."""

    exists: bool = True
    healthy: bool = False
    annotation: str | None = None
    tainted: bool = False
    taint_added: datetime | None = None
    last_heard_from: datetime | None = None
    remediation: RemediationObservation = field(default_factory=lambda: RemediationObservation(exists=False))
    pods: int = 3

    def observe(self, now: datetime) -> FenceObservation:
        view = make_node("w1", ready="True" if self.healthy else "Unknown", ready_for=120)
        taint = replace(OUT_OF_SERVICE, time_added=self.taint_added)
        view = replace(view, fence_confirmed=self.annotation, taints=(taint,) if self.tainted else ())
        return FenceObservation(
            node_name="w1",
            node=view if self.exists else None,
            node_healthy=self.healthy and self.exists,
            incident=INCIDENT,
            remediation=self.remediation,
            pods_remaining_on_node=self.pods,
            last_heard_from=self.last_heard_from,
        )


def leave(node: Node, leftovers: set[str]) -> None:
    if "taint" in leftovers:
        node.tainted = True
    if "old-taint" in leftovers:
        node.tainted, node.taint_added = True, INCIDENT.detected_at - timedelta(days=3)
    for value in ("true", "false", "other"):
        if f"annotation-{value}" in leftovers:
            node.annotation = "w1-production-20260226-101010" if value == "other" else value
    if "remediation" in leftovers:
        node.remediation = FOREIGN_SUCCESS


def happen(node: Node, happening: str, now: datetime) -> None:
    match happening:
        case "annotate":
            node.annotation = CONFIRMED
        case "stale-annotation":
            node.annotation = "true"
        case "admin-taints":
            node.tainted, node.taint_added = True, now
        case "delete-node":
            node.exists, node.tainted, node.annotation = False, False, None
        case "recover":
            node.healthy = node.exists
        case "relapse":
            node.healthy = False
        case "still-talking":
            node.last_heard_from = now
        case "remediation-succeeds" if node.remediation.owner_uid == INCIDENT.uid:
            node.remediation = replace(node.remediation, succeeded=True)
        case "remediation-fails" if node.remediation.owner_uid == INCIDENT.uid:
            node.remediation = replace(node.remediation, failed=True, message="agent failed")
        case "foreign-remediation-succeeds" if not node.remediation.exists:
            node.remediation = FOREIGN_SUCCESS
        case "remediation-vanishes":
            node.remediation = RemediationObservation(exists=False)
        case "pods-drain":
            node.pods = 0


def watchdog_due(node: Node, fencing: FencingSpec, now: datetime) -> bool:
    silent_since = max(ago(60), node.last_heard_from or ago(60))
    return now >= silent_since + timedelta(minutes=3)


@settings(max_examples=400, deadline=None)
@given(
    fencing=st.sampled_from([MANUAL, WATCHDOG, REMEDIATION, UNFENCED]),
    leftovers=st.sets(st.sampled_from(LEFTOVERS)),
    script=st.lists(
        st.tuples(st.integers(1, 150), st.sampled_from(HAPPENINGS), st.booleans()),
        min_size=1,
        max_size=20,
    ),
)
def test_fenced_only_with_the_confirmation_the_strategy_demands(
    fencing: FencingSpec,
    leftovers: set[str],
    script: list[tuple[int, str, bool]],
) -> None:
    node = Node()
    leave(node, leftovers)
    phase, status = FailoverPhase.DETECTED, None
    now = NOW
    human_confirmed = False  # an annotation, an administrator's taint, or a deleted Node object
    taint_authorised = False  # kvha issued the taint once its confirmation held (checked below)
    admin_tainted = False  # someone applied the taint during this incident, with its timeAdded
    for elapsed, happening, api_call_works in script:
        now += timedelta(seconds=elapsed)
        happen(node, happening, now)
        admin_tainted |= happening == "admin-taints"
        human_confirmed |= node.annotation == CONFIRMED or admin_tainted or not node.exists
        observation = node.observe(now)
        result = step_fencing(phase=phase, status=status, observation=observation, fencing=fencing, now=now)

        if phase.terminal:
            assert result.phase is phase, "a finished incident never changes phase"
        for action in result.actions:
            if isinstance(action, ApplyOutOfServiceTaint):
                taint_authorised = True
                assert result.phase is FailoverPhase.FENCING
                if fencing.confirmation is FenceConfirmation.WATCHDOG:
                    assert watchdog_due(node, fencing, now) or (status is not None and status.taint_applied)
                else:
                    assert human_confirmed
            if isinstance(action, RemoveOutOfServiceTaint):
                assert observation.pods_remaining_on_node == 0
                assert observation.node_healthy or result.phase is FailoverPhase.ABORTED
                assert taint_authorised, "kvha removes only the taint it applied for this incident"
            if isinstance(action, DeleteRemediation):
                assert observation.remediation is not None
                assert observation.remediation.owner_uid == INCIDENT.uid, "never delete what kvha did not create"
                assert action.uid == observation.remediation.uid
            if isinstance(action, RemoveFenceConfirmation):
                assert action.value == CONFIRMED, "an annotation given for another incident is not kvha's to remove"
        if result.phase is FailoverPhase.FENCED and phase not in FENCED_PHASES:
            fresh_taint = node.tainted and (taint_authorised or admin_tainted)
            assert _confirmation_present(
                fencing, node, observation, human_confirmed or taint_authorised, fresh_taint=fresh_taint, now=now
            )
            assert result.status.confirmed_at == now

        if api_call_works:  # actuation carries the actions out, or fails and they are re-issued
            carry_out(node, result.actions)
        phase, status = result.phase, result.status


def carry_out(node: Node, actions: tuple[FenceAction, ...]) -> None:
    for action in actions:
        match action:
            case ApplyOutOfServiceTaint() if not node.tainted:
                node.tainted, node.taint_added = node.exists, None  # kvha's taint has no timeAdded
            case RemoveOutOfServiceTaint():
                node.tainted = False
            case CreateRemediation(owner=owner):
                node.remediation = RemediationObservation(exists=True, uid="kvha-remediation", owner_uid=owner.uid)
            case DeleteRemediation():
                node.remediation = RemediationObservation(exists=False)
            case RemoveFenceConfirmation(value=value) if node.annotation == value:
                node.annotation = None


def _confirmation_present(
    fencing: FencingSpec,
    node: Node,
    observation: FenceObservation,
    confirmed_before: bool,
    *,
    fresh_taint: bool,
    now: datetime,
) -> bool:
    """Once the watchdog deadline passed the node counts as reset, so contact afterwards is the
    rebooted node; a confirmation given earlier therefore still holds when the Node is deleted.
    Only evidence of this incident counts: a fresh taint, this incident's own remediation."""
    match fencing.strategy:
        case FencingStrategy.NONE:
            return fencing.allow_unfenced_restart
        case FencingStrategy.REMEDIATION:
            remediation = observation.remediation
            return remediation is not None and remediation.succeeded and remediation.owner_uid == INCIDENT.uid
        case _ if fencing.confirmation is FenceConfirmation.MANUAL:
            return confirmed_before and (fresh_taint or not node.exists)
        case _:
            return fresh_taint or (not node.exists and (confirmed_before or watchdog_due(node, fencing, now)))


def test_no_fencing_status_means_no_restart_clearance() -> None:
    assert restart_clearance(None) == (False, False)
    assert restart_clearance(FencingStatus(strategy="OutOfServiceTaint", confirmed_by="x")) == (False, False)
