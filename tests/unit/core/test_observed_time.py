"""Issue 9: kvha judges a node on the time it observed, never on the node's clock; it judges nothing
before its caches are synced; and it acts only when a fresh read of the API agrees."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from pydantic import ValidationError

from core.strategies import MONOTONIC_NOW, NOW, ago, make_lease, make_node, sightings
from kvha.detection import Health, NodeSightings, StormState, Verdict
from kvha.fencing import ApplyOutOfServiceTaint, CreateRemediation
from kvha.models.hapolicy import DetectionSpec, HAPolicySpec, HAPolicyStatus
from kvha.models.nodefailover import FailoverPhase, FencingStatus, NodeFailoverSpec, NodeFailoverStatus
from kvha.models.views import NodeView
from kvha.reconcile import (
    FailoverRecord,
    IncidentSnapshot,
    PolicySnapshot,
    advance_incident,
    evaluate_policy,
    fences,
    fresh_read_agrees,
)

DETECTION = {"unhealthyConditions": [{"type": "Ready", "status": "Unknown", "duration": "30s"}]}
WATCHDOG = HAPolicySpec.model_validate(
    {"detection": DETECTION, "fencing": {"confirmation": "Watchdog", "watchdogTimeout": "1m"}}
)
REMEDIATION = HAPolicySpec.model_validate(
    {
        "detection": DETECTION,
        "fencing": {
            "strategy": "Remediation",
            "remediationTemplate": {
                "apiVersion": "self-node-remediation.medik8s.io/v1alpha1",
                "kind": "SelfNodeRemediationTemplate",
                "name": "automatic",
                "namespace": "medik8s",
            },
        },
    }
)
DEAD = make_node("w1", ready="Unknown")
DEAD_FOR_10_MINUTES = sightings(lease_ago=600, ready_for=600, heartbeat_ago=600)


def policy_snapshot(*, synced: bool, nodes: list[NodeView]) -> PolicySnapshot:
    return PolicySnapshot(
        name="p",
        generation=1,
        policy=WATCHDOG,
        invalid_message=None,
        status=HAPolicyStatus(),
        nodes=nodes,
        leases={n.name: make_lease(n.name) for n in nodes},
        admission=None,
        failovers=[],
        now=NOW,
        monotonic=MONOTONIC_NOW,
        sightings={"w1": DEAD_FOR_10_MINUTES},
        caches_synced=synced,
    )


def test_no_verdict_before_the_caches_are_synced() -> None:
    """Before the watches have delivered their initial lists, a node that looks long dead gets no
    incident, is not counted, and the policy's status is left as it was."""
    nodes = [DEAD, make_node("w2"), make_node("w3")]
    before = evaluate_policy(policy_snapshot(synced=False, nodes=nodes))
    assert before.open_incidents == ()
    assert before.status == HAPolicyStatus()
    after = evaluate_policy(policy_snapshot(synced=True, nodes=nodes))
    assert [i.node for i in after.open_incidents] == ["w1"]
    assert after.status.unhealthy_nodes == 1


@pytest.mark.parametrize(
    ("finished", "recovered", "reopened"), [(False, False, False), (True, True, True), (False, True, True)]
)
def test_after_a_restart_a_node_still_fenced_by_its_completed_incident_gets_no_new_one(
    finished: bool, recovered: bool, reopened: bool
) -> None:
    """After a restart kvha counts the dead node's silence from its first sight, so the spell seems
    to start after the completed incident was opened. The incident still holding the node fenced
    (not finished) and not having seen it recover says it is the same spell; once the node
    recovered (even if a pod on it still keeps the old taint from being removed), a new failure is new."""
    completed = FailoverRecord(
        name="w1-p-old",
        node="w1",
        policy="p",
        phase=FailoverPhase.COMPLETED,
        detected_at=ago(3600),
        finished=finished,
        recovered=recovered,
    )
    snap = replace(policy_snapshot(synced=True, nodes=[DEAD, make_node("w2"), make_node("w3")]), failovers=[completed])
    opened = evaluate_policy(snap).open_incidents
    assert bool(opened) is reopened


@pytest.mark.parametrize(
    ("opened_after_spell_began", "reopened"),
    [(timedelta(0), False), (timedelta(seconds=30), False), (timedelta(microseconds=-1), True)],
)
def test_a_finished_incident_opened_in_this_spell_of_ill_health_is_not_opened_again(
    opened_after_spell_began: timedelta, reopened: bool
) -> None:
    """A node that stays dead after its incident finished (nothing of its fencing left to undo, the
    node never seen back) must not get a second incident, and a second round of restarts. The
    incident's detectedAt against the start of the spell says so, to the microsecond: the failover
    benchmark found new incidents opened because detectedAt was written truncated to the second."""
    nodes = [DEAD, make_node("w2"), make_node("w3")]
    [first] = evaluate_policy(policy_snapshot(synced=True, nodes=nodes)).open_incidents
    done = FailoverRecord(
        name=first.name,
        node="w1",
        policy="p",
        phase=FailoverPhase.COMPLETED,
        detected_at=first.detected_at + opened_after_spell_began,
        finished=True,
    )
    snap = replace(policy_snapshot(synced=True, nodes=nodes), failovers=[done])
    assert bool(evaluate_policy(snap).open_incidents) is reopened


def incident(
    policy: HAPolicySpec,
    *,
    node: NodeView | None = DEAD,
    seen: NodeSightings = DEAD_FOR_10_MINUTES,
    status: NodeFailoverStatus | None = None,
    synced: bool = True,
) -> IncidentSnapshot:
    others = [make_node("w2"), make_node("w3")]  # one dead host of three: no storm
    return IncidentSnapshot(
        name="w1-p",
        uid="uid-w1-p",
        spec=NodeFailoverSpec(node_name="w1", policy_name="p", detected_at=ago(570), reason="Ready=Unknown"),
        status=status or NodeFailoverStatus(),
        policy=policy,
        node=node,
        lease=make_lease("w1"),
        all_nodes=[n for n in (node, *others) if n is not None],
        leases={n: make_lease(n) for n in ("w1", "w2", "w3")},
        recorded_storm=StormState.restored(),
        remediation=None,
        pods_on_node=[],
        vms={},
        vmis={},
        launcher_pods={},
        nodes=[],
        unfenced_safe=set(),
        now=NOW,
        monotonic=MONOTONIC_NOW,
        seen=seen,
        sightings={"w1": seen, "w2": sightings(), "w3": sightings()},
        caches_synced=synced,
    )


def test_no_incident_step_before_the_caches_are_synced() -> None:
    held = advance_incident(incident(REMEDIATION, synced=False))
    assert held.fence_actions == ()
    assert held.status == NodeFailoverStatus()
    step = advance_incident(incident(REMEDIATION))
    assert [type(a) for a in step.fence_actions] == [CreateRemediation]
    assert fences(step)


def test_the_watchdog_never_fires_for_a_node_that_kvha_sees_writing_whatever_its_clock_says() -> None:
    """A node whose clock runs 4 minutes behind: its Lease renewTime and heartbeats say "4 minutes
    ago", but kvha saw them change 2 s ago, so the watchdog has not reset it."""
    skewed = replace(DEAD, kubevirt_heartbeat=ago(240))
    writing = sightings(lease_ago=2, ready_for=600, heartbeat_ago=2, kubevirt_ago=2)
    fencing = NodeFailoverStatus(
        phase=FailoverPhase.FENCING, fencing=FencingStatus(strategy="OutOfServiceTaint", started_at=ago(560))
    )
    step = advance_incident(incident(WATCHDOG, node=skewed, seen=writing, status=fencing))
    assert not fences(step)
    assert step.status.phase is FailoverPhase.FENCING
    assert "waiting for node w1's watchdog" in (step.status.message or "")
    # The same node, silent as kvha observed it for longer than the watchdog timeout, is fenced.
    silent = advance_incident(incident(WATCHDOG, node=skewed, seen=DEAD_FOR_10_MINUTES, status=fencing))
    assert [type(a) for a in silent.fence_actions] == [ApplyOutOfServiceTaint]
    assert fences(silent)


@pytest.mark.parametrize(
    ("verdict", "to_fence", "agrees"),
    [
        (Verdict(Health.UNHEALTHY, ("Ready=Unknown for 40s",), detected_at=NOW), False, True),
        (Verdict(Health.UNHEALTHY, ("Ready=Unknown for 40s",), detected_at=NOW), True, True),
        (Verdict(Health.SUSPECT, ("Lease not renewed for 25s",)), False, False),
        (Verdict(Health.SUSPECT, ("Lease not renewed for 25s",)), True, False),
        (Verdict(Health.HEALTHY), True, False),
        (None, False, False),  # the Node is gone: nothing to open an incident for
        (None, True, True),  # the Node is gone: fencing rests on the deletion
    ],
)
def test_kvha_acts_only_when_the_fresh_read_agrees(verdict: Verdict | None, to_fence: bool, agrees: bool) -> None:
    assert fresh_read_agrees(verdict=verdict, to_fence=to_fence) is agrees


def test_a_fencing_step_is_one_that_taints_or_creates_a_remediation() -> None:
    waiting = advance_incident(incident(WATCHDOG, seen=sightings(lease_ago=2, ready_for=600, heartbeat_ago=2)))
    assert waiting.fence_actions == ()
    assert not fences(waiting)


@pytest.mark.parametrize("value", ["30s", "2m", "179s", "2m59s"])
def test_a_kubevirt_heartbeat_threshold_under_three_minutes_is_rejected(value: str) -> None:
    with pytest.raises(ValidationError, match="below 3m"):
        DetectionSpec(kubevirt_heartbeat_stale_after=value)


@pytest.mark.parametrize("value", ["3m", "180s", "5m", "1h"])
def test_a_kubevirt_heartbeat_threshold_of_three_minutes_or_more_is_accepted(value: str) -> None:
    assert DetectionSpec(kubevirt_heartbeat_stale_after=value).kubevirt_heartbeat_stale_after == value
