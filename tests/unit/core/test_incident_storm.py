"""The storm guard in the incident step: counted from the snapshot's nodes in the same step that
would fence, not read back from the policy's published status, which may be a tick old.

A rack loses its switch: its hosts go silent within a second or two of each other. The first
incident is opened while the policy still counts one unhealthy node; if its first step trusted that
count it would fence (and restart the VMs of) a host that is only partitioned, before the policy
ever published the storm.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.strategies import (
    FAILED_NODE,
    NOW,
    ago,
    fencing_snapshot,
    make_launcher,
    make_lease,
    make_node,
    make_vm,
    make_vmi,
    sightings,
)
from core.test_fencing import INCIDENT
from core.test_incident_finishes import FENCED, incident
from core.test_incident_finishes import POLICY as PROTECTED
from kvha.constants import REASON_STORM
from kvha.detection import StormState
from kvha.fencing import ApplyOutOfServiceTaint
from kvha.models.hapolicy import HAPolicySpec, StormGuardSpec
from kvha.models.nodefailover import FailoverPhase, FailoverVM, NodeFailoverSpec, NodeFailoverStatus
from kvha.reconcile import IncidentStep, advance_incident
from kvha.reconcile.incident import STORM_RECHECK

POLICY = HAPolicySpec()  # maxUnhealthyNodes 49%: one host of three may fail, two is a storm


def incident_step(
    *,
    others_silent: int,
    hosts: int = 3,
    recorded: StormState | None = None,
    phase: FailoverPhase = FailoverPhase.DETECTED,
) -> IncidentStep:
    """A step of w1's incident, its fence confirmation already given, in a cluster of `hosts`
    hosts of which `others_silent` besides w1 have gone silent too."""
    names = [f"w{i}" for i in range(1, hosts + 1)]
    quiet = {"w1", *names[1 : 1 + others_silent]}
    nodes = [
        make_node(name, ready="Unknown", ready_for=90, heartbeat_ago=130) if name in quiet else make_node(name)
        for name in names
    ]
    failed = replace(nodes[0], fence_confirmed=INCIDENT.name)
    nodes[0] = failed
    leases = {n.name: make_lease(n.name, renewed_ago=130 if n.name in quiet else 3) for n in nodes}
    # What kvha observed: the quiet hosts' Lease and heartbeat unchanged for 130 s, Ready=Unknown for 90 s.
    seen = {
        n.name: sightings(lease_ago=130, ready_for=90, heartbeat_ago=130) if n.name in quiet else sightings()
        for n in nodes
    }
    return advance_incident(
        fencing_snapshot(
            name=INCIDENT.name,
            uid=INCIDENT.uid,
            spec=NodeFailoverSpec(
                node_name="w1", policy_name="production", detected_at=INCIDENT.detected_at, reason="x"
            ),
            status=NodeFailoverStatus(phase=phase),
            policy=POLICY,
            nodes=nodes,
            leases=leases,
            seen=seen,
            recorded_storm=recorded,
        )
    )


def test_a_second_silent_host_holds_fencing_although_the_policy_has_not_published_a_storm() -> None:
    held = incident_step(others_silent=1)  # the policy's status still says: no storm
    assert held.fence_actions == ()
    assert held.status.phase is FailoverPhase.DETECTED
    assert held.status.message == (
        "held by the storm guard: 2 of 3 watched nodes are unhealthy, above the limit of 1 (49%); "
        "nothing is fenced or restarted"
    )


def test_one_silent_host_of_three_is_fenced() -> None:
    """The same step without the second silent host acts: the guard above is what held it."""
    acting = incident_step(others_silent=0)
    assert acting.fence_actions == (ApplyOutOfServiceTaint("w1"),)
    assert acting.status.phase is FailoverPhase.FENCING


def test_a_storm_on_record_holds_until_the_policy_records_its_end_and_the_cooldown_passes() -> None:
    """Fresh counts may only add caution: a storm the policy recorded is not ended by the step."""
    still_on_record = incident_step(others_silent=0, recorded=StormState.restored(active=True))
    assert still_on_record.fence_actions == ()
    cooling = incident_step(others_silent=0, recorded=StormState.restored(ended_at=ago(60)))
    assert cooling.fence_actions == ()
    assert "cooldown" in (cooling.status.message or "")
    over = incident_step(others_silent=0, recorded=StormState.restored(ended_at=NOW - timedelta(minutes=6)))
    assert over.fence_actions == (ApplyOutOfServiceTaint("w1"),)


@settings(max_examples=60, deadline=None)
@given(
    hosts=st.integers(2, 12),
    data=st.data(),
    recorded=st.sampled_from(
        [StormState.restored(), StormState.restored(active=True), StormState.restored(ended_at=ago(3600))]
    ),
    phase=st.sampled_from([FailoverPhase.DETECTED, FailoverPhase.FENCING]),
)
def test_no_fencing_action_while_the_fresh_count_is_above_the_limit(
    hosts: int, data: st.DataObject, recorded: StormState, phase: FailoverPhase
) -> None:
    """Whatever the policy last published, a step that sees more silent hosts than the limit
    allows issues no fencing action."""
    silent = 1 + data.draw(st.integers(0, hosts - 1), label="others silent")
    step = incident_step(others_silent=silent - 1, hosts=hosts, recorded=recorded, phase=phase)
    if silent > hosts * 49 // 100:
        assert step.fence_actions == ()
        assert (step.status.message or "").startswith("held by the storm guard")


@pytest.mark.parametrize("phase", [FailoverPhase.FENCED, FailoverPhase.RESTARTING])
def test_a_storm_that_begins_after_fencing_holds_the_restarts(phase: FailoverPhase) -> None:
    """The node is fenced, then more hosts go silent: the VMs are not restarted into what may be a
    partition, and the incident says why (one Warning, not one per step) until the storm is over."""
    web = replace(make_vm("web"), labels={"tier": "protected"})
    vmis = {web.key: make_vmi(web, uid="old-web", node=FAILED_NODE)}
    pods = [make_launcher(web, vmi_uid="old-web", node=FAILED_NODE)]
    entry = FailoverVM(namespace="apps", name="web", priority="Medium", from_node=FAILED_NODE, old_vmi_uid="old-web")

    def step(storm_limit: str, *, message: str | None = None) -> IncidentStep:
        # A limit of 0 makes the failed host alone a storm: the count is taken in the step.
        copy = PROTECTED.model_copy(update={"storm_guard": StormGuardSpec(max_unhealthy_nodes=storm_limit)})
        status = NodeFailoverStatus(
            phase=phase, policy=copy, fencing=FENCED, vms=[entry], started_at=ago(55), message=message
        )
        return incident(status=status, live=None, vms=[web], vmis=vmis, pods=pods)

    held = step("0")
    assert held.restart_actions == ()
    assert held.status.phase is phase
    assert (held.status.message or "").startswith("restarts held by the storm guard: ")
    assert [(e.reason, e.type) for e in held.events] == [(REASON_STORM, "Warning")]
    assert held.recheck_after is not None
    assert held.recheck_after <= STORM_RECHECK
    assert step("0", message=held.status.message).events == ()
    acting = step("49%")
    assert [a.name for a in acting.restart_actions] == ["web"]
