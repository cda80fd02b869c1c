"""Fencing never reaches Fenced without the confirmation its strategy demands, whatever the world
does in between (confirmations, deletions, recoveries, a remediator's verdicts, failed API calls)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from core.strategies import NOW, OUT_OF_SERVICE, ago, make_node
from core.test_fencing import MANUAL, REMEDIATION, UNFENCED, WATCHDOG
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
)
FENCED_PHASES = (FailoverPhase.FENCED, FailoverPhase.RESTARTING, FailoverPhase.COMPLETED)


@dataclass
class Node:
    """The world around one failed node, changed by happenings and by fencing's own actions."""

    exists: bool = True
    healthy: bool = False
    annotated: bool = False
    tainted: bool = False
    last_heard_from: datetime | None = None
    remediation: RemediationObservation = field(default_factory=lambda: RemediationObservation(exists=False))
    pods: int = 3

    def observe(self, now: datetime) -> FenceObservation:
        view = make_node("w1", ready="True" if self.healthy else "Unknown", ready_for=120)
        view = replace(
            view, fence_confirmed="true" if self.annotated else None, taints=(OUT_OF_SERVICE,) if self.tainted else ()
        )
        return FenceObservation(
            node_name="w1",
            node=view if self.exists else None,
            node_healthy=self.healthy and self.exists,
            unhealthy_since=ago(60),
            remediation=self.remediation,
            pods_remaining_on_node=self.pods,
            last_heard_from=self.last_heard_from,
        )


def happen(node: Node, happening: str, now: datetime) -> None:
    match happening:
        case "annotate":
            node.annotated = True
        case "admin-taints":
            node.tainted = True
        case "delete-node":
            node.exists, node.tainted, node.annotated = False, False, False
        case "recover":
            node.healthy = node.exists
        case "relapse":
            node.healthy = False
        case "still-talking":
            node.last_heard_from = now
        case "remediation-succeeds" if node.remediation.exists:
            node.remediation = RemediationObservation(exists=True, succeeded=True)
        case "remediation-fails" if node.remediation.exists:
            node.remediation = RemediationObservation(exists=True, failed=True, message="agent failed")
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
    script=st.lists(
        st.tuples(st.integers(1, 150), st.sampled_from(HAPPENINGS), st.booleans()),
        min_size=1,
        max_size=20,
    ),
)
def test_fenced_only_with_the_confirmation_the_strategy_demands(
    fencing: FencingSpec,
    script: list[tuple[int, str, bool]],
) -> None:
    node = Node()
    phase, status = FailoverPhase.DETECTED, None
    now = NOW
    human_confirmed = False  # an annotation, an administrator's taint, or a deleted Node object
    taint_authorised = False  # kvha issued the taint once its confirmation held (checked below)
    for elapsed, happening, api_call_works in script:
        now += timedelta(seconds=elapsed)
        happen(node, happening, now)
        human_confirmed |= node.annotated or (node.tainted and happening == "admin-taints") or not node.exists
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
        if result.phase is FailoverPhase.FENCED and phase not in FENCED_PHASES:
            assert _confirmation_present(fencing, node, observation, human_confirmed or taint_authorised, now)
            assert result.status.confirmed_at == now

        if api_call_works:  # actuation carries the actions out, or fails and they are re-issued
            carry_out(node, result.actions)
        phase, status = result.phase, result.status


def carry_out(node: Node, actions: tuple[FenceAction, ...]) -> None:
    for action in actions:
        match action:
            case ApplyOutOfServiceTaint():
                node.tainted = node.exists
            case RemoveOutOfServiceTaint():
                node.tainted = False
            case CreateRemediation():
                node.remediation = RemediationObservation(exists=True)
            case DeleteRemediation():
                node.remediation = RemediationObservation(exists=False)
            case RemoveFenceConfirmation():
                node.annotated = False


def _confirmation_present(
    fencing: FencingSpec,
    node: Node,
    observation: FenceObservation,
    confirmed_before: bool,
    now: datetime,
) -> bool:
    """Once the watchdog deadline passed the node counts as reset, so contact afterwards is the
    rebooted node; a confirmation given earlier therefore still holds when the Node is deleted."""
    match fencing.strategy:
        case FencingStrategy.NONE:
            return fencing.allow_unfenced_restart
        case FencingStrategy.REMEDIATION:
            return observation.remediation is not None and observation.remediation.succeeded
        case _ if fencing.confirmation is FenceConfirmation.MANUAL:
            return confirmed_before and (node.tainted or not node.exists)
        case _:
            return node.tainted or (not node.exists and (confirmed_before or watchdog_due(node, fencing, now)))


def test_no_fencing_status_means_no_restart_clearance() -> None:
    assert restart_clearance(None) == (False, False)
    assert restart_clearance(FencingStatus(strategy="OutOfServiceTaint", confirmed_by="x")) == (False, False)
