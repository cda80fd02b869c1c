"""Fencing evidence must belong to this incident (issue 9).

A host fenced in an earlier incident may have been rebooted and be only partitioned now, its VMs
running. Whatever that earlier incident (or another tool) left on the node - an out-of-service
taint, a kvha.io/fence-confirmed annotation, a Succeeded remediation - says nothing about the node
today; taking it as fencing would start every VM a second time.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from core.strategies import OUT_OF_SERVICE, make_node
from core.test_fencing import CONFIRMED, DEAD, INCIDENT, MANUAL, REMEDIATION, TEMPLATE, WATCHDOG, observe, ours, step
from kvha.constants import REASON_FENCING_AWAITING
from kvha.fencing import (
    ApplyOutOfServiceTaint,
    CreateRemediation,
    DeleteRemediation,
    RemediationObservation,
    RemoveFenceConfirmation,
    RemoveOutOfServiceTaint,
    restart_clearance,
)
from kvha.models.hapolicy import FencingSpec
from kvha.models.nodefailover import FailoverPhase

KVHA_TAINT = replace(OUT_OF_SERVICE, effect="NoSchedule")
"""kvha's own out-of-service taint: NoSchedule, no timeAdded."""


@pytest.mark.parametrize(
    "leftover",
    [
        pytest.param(KVHA_TAINT, id="kvha-taint-of-an-earlier-incident"),
        pytest.param(replace(OUT_OF_SERVICE, time_added=INCIDENT.detected_at - timedelta(days=2)), id="added-before"),
        pytest.param(replace(OUT_OF_SERVICE, time_added=None), id="no-time-added"),
    ],
)
@pytest.mark.parametrize("fencing", [MANUAL, WATCHDOG], ids=["manual", "watchdog"])
def test_an_out_of_service_taint_from_before_the_incident_does_not_fence_it(
    leftover: object, fencing: FencingSpec
) -> None:
    partitioned = replace(DEAD, taints=(leftover,))  # type: ignore[arg-type]
    first = step(None, observe(partitioned), fencing)
    assert first.phase is FailoverPhase.FENCING
    assert first.actions == ()
    assert restart_clearance(first.status) == (False, False)
    later = step(first, observe(partitioned), fencing, after=30)
    assert later.phase is FailoverPhase.FENCING
    assert later.actions == ()


def test_the_admin_is_told_why_the_taint_already_on_the_node_does_not_count() -> None:
    waiting = step(None, observe(replace(DEAD, taints=(KVHA_TAINT,))), MANUAL)
    [event] = waiting.events
    assert event.reason == REASON_FENCING_AWAITING
    assert "its out-of-service taint was not applied for this incident" in event.message
    assert f"kvha.io/fence-confirmed={INCIDENT.name} --overwrite" in event.message


def test_an_out_of_service_taint_added_after_detection_fences() -> None:
    fresh = replace(OUT_OF_SERVICE, time_added=INCIDENT.detected_at + timedelta(seconds=1))
    fenced = step(None, observe(replace(DEAD, taints=(fresh,))), MANUAL)
    assert fenced.phase is FailoverPhase.FENCED
    assert "applied by someone other than kvha at 2026-03-01T11:59:01Z" in (fenced.status.confirmed_by or "")
    assert not fenced.status.taint_applied  # not kvha's, so kvha will not remove it


def test_a_confirmed_incident_is_fenced_by_the_taint_an_earlier_incident_left() -> None:
    """The taint is still the right state of the node; only the confirmation has to be new."""
    stale = replace(DEAD, taints=(KVHA_TAINT,))
    waiting = step(None, observe(stale), MANUAL)
    confirmed = step(waiting, observe(replace(stale, fence_confirmed=CONFIRMED)), MANUAL, after=5)
    assert confirmed.status.taint_applied
    assert confirmed.actions == (ApplyOutOfServiceTaint("w1"),)  # a no-op in the adapter: it is there
    fenced = step(confirmed, observe(replace(stale, fence_confirmed=CONFIRMED)), MANUAL, after=6)
    assert fenced.phase is FailoverPhase.FENCED
    assert fenced.status.confirmed_by == f"Node annotation kvha.io/fence-confirmed={INCIDENT.name}"


@pytest.mark.parametrize("value", ["true", "false", "yes", "w1-production-20260226-101010"])
def test_a_fence_confirmed_annotation_not_naming_this_incident_confirms_nothing(value: str) -> None:
    annotated = replace(DEAD, fence_confirmed=value)
    waiting = step(None, observe(annotated), MANUAL)
    assert waiting.phase is FailoverPhase.FENCING
    assert waiting.actions == ()
    [event] = waiting.events
    assert f"its annotation kvha.io/fence-confirmed={value} does not name this incident" in event.message
    assert f"`kubectl annotate node w1 kvha.io/fence-confirmed={INCIDENT.name} --overwrite`" in event.message
    again = step(waiting, observe(annotated), MANUAL, after=60)
    assert (again.phase, again.actions, again.events) == (FailoverPhase.FENCING, (), ())


def test_an_annotation_left_for_another_incident_is_neither_removed_nor_waited_for() -> None:
    other = replace(make_node("w1"), fence_confirmed="w1-production-20260226-101010")
    aborted = step(
        step(None, observe(replace(DEAD, fence_confirmed=other.fence_confirmed)), MANUAL),
        observe(other, node_healthy=True),
        MANUAL,
        after=90,
    )
    assert aborted.phase is FailoverPhase.ABORTED
    assert aborted.actions == ()
    assert aborted.holds_nothing


def test_recovery_removes_only_the_annotation_naming_this_incident() -> None:
    confirmed = replace(DEAD, fence_confirmed=CONFIRMED, taints=(KVHA_TAINT,))
    fenced = step(step(None, observe(confirmed), MANUAL), observe(confirmed), MANUAL, after=2)
    assert fenced.phase is FailoverPhase.FENCED
    back = replace(make_node("w1"), fence_confirmed=CONFIRMED)
    cleanup = step(fenced, observe(back, node_healthy=True), MANUAL, after=300)
    assert cleanup.actions == (RemoveFenceConfirmation("w1", CONFIRMED),)


NHC_SUCCEEDED = RemediationObservation(exists=True, succeeded=True, message="rebooted", uid="nhc-1", owner_uid=None)
EARLIER_INCIDENT = RemediationObservation(
    exists=True, succeeded=True, uid="old-1", owner_uid="uid-of-an-earlier-nodefailover"
)


@pytest.mark.parametrize("stale", [NHC_SUCCEEDED, EARLIER_INCIDENT], ids=["not-kvha", "earlier-incident"])
def test_a_succeeded_remediation_kvha_did_not_create_for_this_incident_never_fences(
    stale: RemediationObservation,
) -> None:
    first = step(None, observe(remediation=stale), REMEDIATION)
    assert first.phase is FailoverPhase.FENCING
    assert first.actions == ()  # its name is taken: creating ours would only conflict
    assert restart_clearance(first.status) == (False, False)
    [event] = first.events
    assert event.type == "Warning"
    assert "was not created by kvha for this incident" in event.message
    later = step(first, observe(remediation=stale), REMEDIATION, after=60)
    assert later.phase is FailoverPhase.FENCING
    assert later.actions == ()


def test_kvha_never_deletes_a_remediation_it_did_not_create() -> None:
    first = step(None, observe(remediation=NHC_SUCCEEDED), REMEDIATION)
    back = make_node("w1")
    aborted = step(first, observe(back, node_healthy=True, remediation=NHC_SUCCEEDED), REMEDIATION, after=90)
    assert aborted.phase is FailoverPhase.ABORTED
    assert not any(isinstance(a, DeleteRemediation) for a in aborted.actions)
    assert aborted.holds_nothing  # nothing of kvha's is left, so nothing to wait for


def test_once_the_foreign_remediation_is_gone_kvha_creates_its_own_and_trusts_only_that() -> None:
    blocked = step(None, observe(remediation=NHC_SUCCEEDED), REMEDIATION)
    created = step(blocked, observe(remediation=RemediationObservation(exists=False)), REMEDIATION, after=20)
    assert created.actions == (CreateRemediation(node="w1", template=TEMPLATE, name="w1", owner=INCIDENT),)
    fenced = step(created, observe(remediation=ours(succeeded=True)), REMEDIATION, after=40)
    assert fenced.phase is FailoverPhase.FENCED


def test_cleanup_deletes_kvha_s_remediation_by_its_uid() -> None:
    fenced = step(step(None, observe(), REMEDIATION), observe(remediation=ours(succeeded=True)), REMEDIATION, after=30)
    assert fenced.phase is FailoverPhase.FENCED
    back = make_node("w1")
    cleanup = step(fenced, observe(back, node_healthy=True, remediation=ours(succeeded=True)), REMEDIATION, after=300)
    assert cleanup.actions == (
        DeleteRemediation(node="w1", name="w1", template=TEMPLATE, uid="uid-of-the-remediation"),
    )


def test_the_taint_an_earlier_incident_left_is_not_removed_by_this_one() -> None:
    """It belongs to the earlier incident, which removes it once the node's pods are gone."""
    waiting = step(None, observe(replace(DEAD, taints=(KVHA_TAINT,))), MANUAL)
    back = replace(make_node("w1"), taints=(KVHA_TAINT,))
    aborted = step(waiting, observe(back, node_healthy=True, pods_remaining_on_node=0), MANUAL, after=90)
    assert RemoveOutOfServiceTaint("w1") not in aborted.actions


def test_remediation_ownership_is_read_from_the_owner_reference() -> None:
    obj = {
        "metadata": {
            "name": "w1",
            "uid": "r-1",
            "ownerReferences": [
                {"apiVersion": "example.com/v1", "kind": "NodeFailover", "name": "x", "uid": "not-kvha"},
                {"apiVersion": "kvha.io/v1alpha1", "kind": "NodeFailover", "name": INCIDENT.name, "uid": INCIDENT.uid},
            ],
        },
        "status": {"conditions": [{"type": "Succeeded", "status": "True", "message": "done"}]},
    }
    seen = RemediationObservation.from_api(obj)
    assert seen == RemediationObservation(
        exists=True, succeeded=True, message="done", uid="r-1", owner_uid=INCIDENT.uid
    )
    assert seen.created_for(INCIDENT)
    unowned = RemediationObservation.from_api({"metadata": {"name": "w1", "uid": "r-2"}})
    assert not unowned.created_for(INCIDENT)
    assert RemediationObservation.from_api(None) == RemediationObservation(exists=False)
