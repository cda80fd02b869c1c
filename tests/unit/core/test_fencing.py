"""Fencing: a failed node's VMs restart elsewhere only after the strategy's confirmation, and
everything fencing applied is undone when the node comes back."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from core.strategies import NOW, OUT_OF_SERVICE, ago, make_node
from kvha.constants import (
    REASON_FAILOVER_ABORTED,
    REASON_FENCING_AWAITING,
    REASON_FENCING_CONFIRMED,
    REASON_FENCING_FAILED,
    REASON_FENCING_TIMEOUT,
    REASON_NODE_RECOVERED,
)
from kvha.fencing import (
    UNFENCED_CONFIRMATION,
    ApplyOutOfServiceTaint,
    CreateRemediation,
    DeleteRemediation,
    FenceObservation,
    FencingStep,
    IncidentRef,
    RemediationObservation,
    RemoveFenceConfirmation,
    RemoveOutOfServiceTaint,
    restart_clearance,
    step_fencing,
)
from kvha.models.hapolicy import FenceConfirmation, FencingSpec, FencingStrategy, TemplateReference
from kvha.models.nodefailover import FailoverPhase, FencingStatus

MANUAL = FencingSpec()
WATCHDOG = FencingSpec(confirmation=FenceConfirmation.WATCHDOG, watchdog_timeout="3m")
TEMPLATE = TemplateReference(
    api_version="self-node-remediation.medik8s.io/v1alpha1",
    kind="SelfNodeRemediationTemplate",
    name="automatic",
    namespace="medik8s",
)
REMEDIATION = FencingSpec(strategy=FencingStrategy.REMEDIATION, remediation_template=TEMPLATE)
UNFENCED = FencingSpec(strategy=FencingStrategy.NONE, allow_unfenced_restart=True)

DEAD = make_node("w1", ready="Unknown", ready_for=90, heartbeat_ago=130)
INCIDENT = IncidentRef(name="w1-production-20260301-115900", uid="uid-of-the-nodefailover", detected_at=ago(60))
CONFIRMED = INCIDENT.name
"""The value of kvha.io/fence-confirmed that confirms this incident: its NodeFailover's name."""


def ours(*, succeeded: bool = False, failed: bool = False, message: str = "") -> RemediationObservation:
    """The remediation kvha created for this incident (its ownerReference names the NodeFailover)."""
    return RemediationObservation(
        exists=True,
        succeeded=succeeded,
        failed=failed,
        message=message,
        uid="uid-of-the-remediation",
        owner_uid=INCIDENT.uid,
    )


def observe(node: object = DEAD, **changes: object) -> FenceObservation:
    base = FenceObservation(node_name="w1", node=DEAD, node_healthy=False, incident=INCIDENT)
    return replace(base, node=node, **changes)  # type: ignore[arg-type]


def step(
    previous: FencingStep | None, observation: FenceObservation, fencing: FencingSpec, *, after: float = 0
) -> FencingStep:
    return step_fencing(
        phase=previous.phase if previous else FailoverPhase.DETECTED,
        status=previous.status if previous else None,
        observation=observation,
        fencing=fencing,
        now=NOW + timedelta(seconds=after),
    )


def test_manual_fencing_asks_a_human_and_restarts_nothing_until_confirmed() -> None:
    waiting = step(None, observe(), MANUAL)
    assert waiting.phase is FailoverPhase.FENCING
    assert waiting.actions == ()
    [event] = waiting.events
    assert event.reason == REASON_FENCING_AWAITING
    assert event.type == "Warning"
    assert f"kubectl annotate node w1 kvha.io/fence-confirmed={INCIDENT.name} --overwrite" in event.message
    assert restart_clearance(waiting.status) == (False, False)

    again = step(waiting, observe(), MANUAL, after=30)
    assert (again.phase, again.actions, again.events) == (FailoverPhase.FENCING, (), ())


def test_manual_confirmation_applies_the_taint_and_fences_once_it_is_on_the_node() -> None:
    waiting = step(None, observe(), MANUAL)
    confirmed = step(waiting, observe(replace(DEAD, fence_confirmed=CONFIRMED)), MANUAL, after=20)
    assert confirmed.phase is FailoverPhase.FENCING  # not before the taint is really there
    assert confirmed.actions == (ApplyOutOfServiceTaint("w1"),)
    assert confirmed.status.taint_applied

    tainted = replace(DEAD, fence_confirmed=CONFIRMED, taints=(OUT_OF_SERVICE,))
    fenced = step(confirmed, observe(tainted), MANUAL, after=25)
    assert fenced.phase is FailoverPhase.FENCED
    assert fenced.status.confirmed_by == f"Node annotation kvha.io/fence-confirmed={INCIDENT.name}"
    assert [e.reason for e in fenced.events] == [REASON_FENCING_CONFIRMED]
    assert restart_clearance(fenced.status) == (True, False)


def test_an_out_of_service_taint_applied_by_an_administrator_is_a_confirmation() -> None:
    fresh = replace(OUT_OF_SERVICE, time_added=ago(30))  # after the incident was detected
    fenced = step(None, observe(replace(DEAD, taints=(fresh,))), MANUAL)
    assert fenced.phase is FailoverPhase.FENCED
    assert "applied by someone other than kvha" in (fenced.status.confirmed_by or "")
    assert not fenced.status.taint_applied  # not ours, so kvha will not remove it either


def test_a_deleted_node_confirms_manual_fencing_but_not_the_watchdog() -> None:
    manual = step(None, observe(None), MANUAL)
    assert manual.phase is FailoverPhase.FENCED
    assert manual.actions == ()  # no Node left to taint
    assert "Node object was deleted" in (manual.status.confirmed_by or "")
    watchdog = step(None, observe(None), WATCHDOG)
    assert watchdog.phase is FailoverPhase.FENCING


def test_unconfirmed_fencing_times_out_and_says_why() -> None:
    waiting = step(None, observe(), MANUAL)
    failed = step(waiting, observe(), MANUAL, after=600)
    assert failed.phase is FailoverPhase.FAILED
    assert failed.actions == ()
    [event] = failed.events
    assert event.reason == REASON_FENCING_TIMEOUT
    assert event.type == "Warning"
    assert event.message.startswith("node w1 was not fenced within 10m")
    assert event.message.endswith("its VMs were not restarted")
    assert restart_clearance(failed.status) == (False, False)
    assert failed.holds_nothing  # nothing was applied, so nothing waits for the node to come back


def test_the_watchdog_taints_only_after_its_timeout_without_contact() -> None:
    early = step(None, observe(), WATCHDOG)
    assert early.phase is FailoverPhase.FENCING
    assert early.actions == ()
    assert early.recheck_after == 10
    due = step(early, observe(), WATCHDOG, after=120)
    assert due.actions == (ApplyOutOfServiceTaint("w1"),)
    assert (due.status.confirmed_by or "").startswith("no contact with node w1 since 2026-03-01T11:59:00Z")
    fenced = step(due, observe(replace(DEAD, taints=(OUT_OF_SERVICE,))), WATCHDOG, after=125)
    assert fenced.phase is FailoverPhase.FENCED


def test_the_watchdog_never_fires_for_a_node_that_still_renews_its_lease() -> None:
    """Ready=False with a live kubelet: the node is connected, so no watchdog has reset it."""
    waiting = step(None, observe(last_heard_from=ago(3)), WATCHDOG)
    assert waiting.actions == ()
    talking = step(waiting, observe(last_heard_from=NOW + timedelta(seconds=297)), WATCHDOG, after=300)
    assert talking.actions == ()
    assert talking.phase is FailoverPhase.FENCING
    silent = step(
        talking,
        observe(last_heard_from=NOW + timedelta(seconds=297)),
        WATCHDOG,
        after=297 + 180,
    )
    assert silent.actions == (ApplyOutOfServiceTaint("w1"),)


def test_remediation_is_created_once_named_after_the_node_and_fences_on_success() -> None:
    created = step(None, observe(), REMEDIATION)
    assert created.actions == (CreateRemediation(node="w1", template=TEMPLATE, name="w1", owner=INCIDENT),)
    assert created.status.remediation_name == "w1"
    working = step(created, observe(remediation=ours()), REMEDIATION, after=10)
    assert working.actions == ()
    assert working.phase is FailoverPhase.FENCING
    # No watch tells kvha of the remediator's verdict: it reads the object again within a second.
    assert created.recheck_after == working.recheck_after == 1
    succeeded = ours(succeeded=True, message="node rebooted")
    fenced = step(working, observe(remediation=succeeded), REMEDIATION, after=60)
    assert fenced.phase is FailoverPhase.FENCED
    assert fenced.status.confirmed_by == "SelfNodeRemediation w1 reported success: node rebooted"


def test_a_remediation_that_vanished_before_succeeding_is_created_again() -> None:
    created = step(None, observe(), REMEDIATION)
    again = step(created, observe(remediation=RemediationObservation(exists=False)), REMEDIATION, after=20)
    assert again.actions == (CreateRemediation(node="w1", template=TEMPLATE, name="w1", owner=INCIDENT),)


def test_a_failed_remediation_fails_the_incident() -> None:
    created = step(None, observe(), REMEDIATION)
    failed = step(
        created,
        observe(remediation=ours(failed=True, message="no BMC")),
        REMEDIATION,
        after=30,
    )
    assert failed.phase is FailoverPhase.FAILED
    assert failed.events[0].reason == REASON_FENCING_FAILED
    assert "no BMC" in failed.events[0].message
    assert not failed.holds_nothing  # the remediation stays for a human to inspect until the node recovers


def test_strategy_none_restarts_unfenced_and_says_so() -> None:
    fenced = step(None, observe(), UNFENCED)
    assert fenced.phase is FailoverPhase.FENCED
    assert fenced.status.confirmed_by == UNFENCED_CONFIRMATION
    assert fenced.events[0].type == "Warning"
    assert restart_clearance(fenced.status) == (False, True)


def test_a_node_that_recovers_before_fencing_aborts_and_removes_the_remediation() -> None:
    created = step(None, observe(), REMEDIATION)
    back = replace(make_node("w1"))
    aborted = step(
        created,
        observe(back, node_healthy=True, remediation=ours()),
        REMEDIATION,
        after=90,
    )
    assert aborted.phase is FailoverPhase.ABORTED
    assert aborted.actions == (
        DeleteRemediation(node="w1", name="w1", template=TEMPLATE, uid="uid-of-the-remediation"),
    )
    assert aborted.events[0].reason == REASON_FAILOVER_ABORTED
    gone = step(
        aborted,
        observe(back, node_healthy=True, remediation=RemediationObservation(exists=False)),
        REMEDIATION,
        after=100,
    )
    assert gone.holds_nothing
    assert gone.actions == ()


def test_recovery_removes_the_taint_only_after_the_nodes_pods_are_gone() -> None:
    tainted = replace(DEAD, taints=(OUT_OF_SERVICE,), fence_confirmed=CONFIRMED)
    confirming = step(step(None, observe(replace(DEAD, fence_confirmed=CONFIRMED)), MANUAL), observe(tainted), MANUAL)
    assert confirming.phase is FailoverPhase.FENCED
    restarting = replace(confirming, phase=FailoverPhase.RESTARTING)

    still_dead = step(restarting, observe(tainted), MANUAL, after=60)
    assert still_dead.actions == ()
    assert not still_dead.holds_nothing
    assert still_dead.status.recovered_at is None

    back = replace(make_node("w1"), taints=(OUT_OF_SERVICE,), fence_confirmed=CONFIRMED)
    pods_left = step(restarting, observe(back, node_healthy=True, pods_remaining_on_node=2), MANUAL, after=300)
    assert RemoveOutOfServiceTaint("w1") not in pods_left.actions
    assert pods_left.actions == (RemoveFenceConfirmation("w1", CONFIRMED),)
    assert "waiting for the pods still bound to it" in (pods_left.status.message or "")
    assert pods_left.events[0].reason == REASON_NODE_RECOVERED
    recovered_at = pods_left.status.recovered_at
    assert recovered_at is not None, "the end of the spell is recorded the first time the node is back"

    empty = step(pods_left, observe(back, node_healthy=True, pods_remaining_on_node=0), MANUAL, after=310)
    assert RemoveOutOfServiceTaint("w1") in empty.actions
    assert empty.phase is FailoverPhase.RESTARTING  # the planner owns the phase from here

    clean = step(empty, observe(make_node("w1"), node_healthy=True), MANUAL, after=320)
    assert clean.status.recovered_at == recovered_at, "recorded once"
    assert clean.status.taint_removed
    assert clean.holds_nothing
    assert clean.actions == ()


@pytest.mark.parametrize("phase", [FailoverPhase.COMPLETED, FailoverPhase.ABORTED, FailoverPhase.FAILED])
def test_a_terminal_incident_with_nothing_applied_holds_nothing(phase: FailoverPhase) -> None:
    done = step_fencing(
        phase=phase,
        status=FencingStatus(strategy="OutOfServiceTaint", message="x"),
        observation=observe(make_node("w1"), node_healthy=True),
        fencing=MANUAL,
        now=NOW,
    )
    assert done.holds_nothing
    assert done.actions == ()
    assert done.phase is phase


def test_stepping_twice_on_the_same_observation_repeats_no_events() -> None:
    first = step(None, observe(replace(DEAD, fence_confirmed=CONFIRMED)), MANUAL)
    second = step(first, observe(replace(DEAD, fence_confirmed=CONFIRMED)), MANUAL, after=1)
    assert second.events == ()
    assert second.actions == (ApplyOutOfServiceTaint("w1"),)  # re-issued until the taint lands
