"""Every incident finishes: it follows the policy it opened under, a replacement that never becomes
ready gives its restart slot back, and a restart that never takes effect ends as Failed.

Issue 10, "Incidents always finish": deleting, editing or briefly invalidating the HAPolicy
mid-incident used to fail the incident and abandon its VMs (and keep its taint); narrowing
`vmSelector` marked the VMs not yet restarted Skipped as deleted; two replacements that never
became Ready held `maxParallel: 2` forever; a stuck instance that never went away was retried forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from core.strategies import (
    FAILED_NODE,
    MONOTONIC_NOW,
    NOW,
    OUT_OF_SERVICE,
    ago,
    make_launcher,
    make_lease,
    make_node,
    make_vm,
    make_vmi,
    restart_spec,
    sightings,
)
from core.test_failover import snapshot, states
from kvha.constants import REASON_VM_RESTART_FAILED
from kvha.detection import NodeSightings, Sighting, StormState
from kvha.fencing import RemoveOutOfServiceTaint
from kvha.models.base import LabelSelector
from kvha.models.hapolicy import HAPolicySpec, RestartSpec, TierOrdering
from kvha.models.nodefailover import (
    FailoverPhase,
    FailoverVM,
    FencingStatus,
    NodeFailoverSpec,
    NodeFailoverStatus,
    VMState,
)
from kvha.models.views import NodeView, PodView, VMIView, VMView
from kvha.placement import node_capacities
from kvha.planner import FailoverSnapshot, holds_restart_slot, plan_failover
from kvha.reconcile import IncidentSnapshot, IncidentStep, advance_incident, incident_policy, incident_vms

POLICY = HAPolicySpec(vm_selector=LabelSelector(match_labels={"tier": "protected"}))
INCIDENT_NAME = f"{FAILED_NODE}-production"
FENCED = FencingStatus(
    strategy="OutOfServiceTaint",
    started_at=ago(50),
    confirmed_at=ago(40),
    confirmed_by="the out-of-service taint and the kvha.io/fence-confirmed annotation",
    taint_applied=True,
)


# --- restart slots -----------------------------------------------------------------------------


def test_a_replacement_that_never_becomes_ready_frees_its_restart_slot_after_the_tier_timeout() -> None:
    """Two VMs whose new instances never boot (image pull, missing secret, crash loop) must not
    keep the third waiting for a slot forever: each gives its slot back tierTimeout after its restart."""
    broken = [make_vm("broken-1"), make_vm("broken-2")]
    third = make_vm("third")
    two_slots = RestartSpec(max_parallel=2, tier_ordering=TierOrdering.NONE, tier_timeout="2m")
    first = plan_failover(snapshot([*broken, third], restart=two_slots))
    assert states(first) == {"broken-1": VMState.RESTARTING, "broken-2": VMState.RESTARTING, "third": VMState.PENDING}

    # The stuck instances are gone; KubeVirt's new ones sit in Scheduled and never run.
    vmis = {vm.key: make_vmi(vm, uid=f"new-{vm.name}", node="worker-0", phase="Scheduled") for vm in broken}
    vmis[third.key] = make_vmi(third, uid="old-third", node=FAILED_NODE)
    pods = [
        *(make_launcher(vm, vmi_uid=f"new-{vm.name}", node="worker-0", phase="Pending") for vm in broken),
        make_launcher(third, vmi_uid="old-third", node=FAILED_NODE),
    ]

    def plan_at(after: float, entries: Sequence[FailoverVM]) -> tuple[FailoverSnapshot, object]:
        snap = snapshot([*broken, third], entries=entries, vmis=vmis, pods=pods, restart=two_slots, after=after)
        return snap, plan_failover(snap)

    snap, booting = plan_at(119, first.entries)
    assert booting.actions == ()  # type: ignore[attr-defined]
    assert booting.recheck_after == 1  # type: ignore[attr-defined]  # planned again the moment a slot frees
    assert all(holds_restart_slot(e, snap) for e in first.entries if e.name.startswith("broken"))
    snap, freed = plan_at(120, first.entries)
    assert [a.name for a in freed.actions] == ["third"]  # type: ignore[attr-defined]
    assert not any(holds_restart_slot(e, snap) for e in first.entries if e.name.startswith("broken"))
    assert states(freed)["broken-1"] is VMState.RESTARTING  # type: ignore[arg-type]  # still followed: it may yet run


def test_a_stuck_instance_that_is_still_there_keeps_its_slot() -> None:
    """The concurrency limit is a promise while kvha's own part (removing the stuck instance) is not done."""
    stuck, other = make_vm("a-stuck"), make_vm("b-other")
    one_slot = RestartSpec(max_parallel=1, tier_ordering=TierOrdering.NONE, tier_timeout="30s", max_attempts=100)
    entries = plan_failover(snapshot([stuck, other], restart=one_slot)).entries
    for second in range(10, 200, 10):  # the old instance never goes away: retried, slot kept
        plan = plan_failover(snapshot([stuck, other], entries=entries, restart=one_slot, after=second))
        assert [a.name for a in plan.actions] == ["a-stuck"]
        entries = plan.entries
    assert states(plan)["b-other"] is VMState.PENDING


# --- typed retry state -------------------------------------------------------------------------


def test_attempts_and_the_last_attempt_are_fields_of_the_entry() -> None:
    web = make_vm("web")
    first = plan_failover(snapshot([web]))
    [entry] = first.entries
    assert (entry.attempts, entry.last_attempt_at, entry.restarted_at) == (1, NOW, NOW)
    retry = plan_failover(snapshot([web], entries=first.entries, after=10))
    [entry] = retry.entries
    assert (entry.attempts, entry.last_attempt_at, entry.restarted_at) == (2, NOW + timedelta(seconds=10), NOW)
    assert entry.to_api()["attempts"] == 2
    assert "lastAttemptAt" in entry.to_api()


def test_a_stalled_restart_is_known_from_its_attempts_not_from_its_reason_text() -> None:
    """A retried restart whose instance is still there lets the next tier start, whatever its
    reason says (an entry written by another kvha version, or with its reason edited)."""
    critical, normal = make_vm("critical", priority="High"), make_vm("normal", priority="Low")
    ordered = restart_spec(tier_ordering=TierOrdering.WAIT_FOR_READY)
    entries = snapshot([critical, normal], restart=ordered).entries
    stalled = FailoverVM(
        namespace="apps",
        name="critical",
        priority="High",
        from_node=FAILED_NODE,
        state=VMState.RESTARTING,
        old_vmi_uid="old-critical",
        planned_node="worker-0",
        restarted_at=NOW,
        attempts=3,
        last_attempt_at=NOW + timedelta(seconds=20),
        reason="reworded by a newer kvha",
    )
    plan = plan_failover(snapshot([critical, normal], entries=[stalled, entries[1]], restart=ordered, after=25))
    assert [a.name for a in plan.actions] == ["normal"]


def test_a_restart_that_never_takes_effect_fails_after_max_attempts_and_the_incident_can_complete() -> None:
    web = make_vm("web")
    three = RestartSpec(max_parallel=10, tier_ordering=TierOrdering.NONE, max_attempts=3)
    plan = plan_failover(snapshot([web], restart=three))
    issued = len(plan.actions)
    for second in (10, 20):
        plan = plan_failover(snapshot([web], entries=plan.entries, restart=three, after=second))
        issued += len(plan.actions)
    assert issued == 3
    assert plan.entries[0].attempts == 3
    assert not plan.settled
    failed = plan_failover(snapshot([web], entries=plan.entries, restart=three, after=30))
    [entry] = failed.entries
    assert failed.actions == ()
    assert entry.state is VMState.FAILED
    assert (
        entry.reason
        == f"its stuck instance old-web on node {FAILED_NODE} did not go away after 3 attempts (maxAttempts)"
    )
    [event] = failed.events
    assert (event.reason, event.type, event.vm) == (REASON_VM_RESTART_FAILED, "Warning", "apps/web")
    assert failed.settled
    assert plan_failover(snapshot([web], entries=failed.entries, restart=three, after=60)).actions == ()


def test_the_default_retry_limit_is_bounded() -> None:
    assert 1 <= RestartSpec().max_attempts <= 20


# --- the policy snapshot -----------------------------------------------------------------------


def _protected(name: str, *, priority: str | None = None) -> VMView:
    return replace(make_vm(name, priority=priority), labels={"tier": "protected"})


def incident(
    *,
    status: NodeFailoverStatus,
    live: HAPolicySpec | None,
    vms: Sequence[VMView],
    vmis: dict[str, VMIView],
    pods: Sequence[PodView] = (),
    node: NodeView | None = None,
    pods_on_node: Sequence[PodView] = (),
    after: float = 0,
) -> IncidentStep:
    """One step of the incident of FAILED_NODE, as the handler builds it from the cluster."""
    healthy = [make_node("worker-0"), make_node("worker-1")]
    failed = node or make_node(FAILED_NODE, ready="Unknown", ready_for=90, heartbeat_ago=130, taints=(OUT_OF_SERVICE,))
    nodes = [failed, *healthy]
    leases = {
        n.name: make_lease(n.name, renewed_ago=(130 if n.name == FAILED_NODE and node is None else 3) - after)
        for n in nodes
    }
    seen = {n.name: _later(sightings(), after) for n in healthy}
    seen[FAILED_NODE] = _later(
        sightings(lease_ago=130, ready_for=90, heartbeat_ago=130) if node is None else sightings(ready_for=600),
        after,
    )
    policy = incident_policy(status, live)
    launchers: dict[str, list[PodView]] = {}
    for pod in pods:
        launchers.setdefault(pod.vmi_uid or "", []).append(pod)
    return advance_incident(
        IncidentSnapshot(
            name=INCIDENT_NAME,
            uid="uid-of-the-nodefailover",
            spec=NodeFailoverSpec(node_name=FAILED_NODE, policy_name="production", detected_at=ago(60), reason="x"),
            status=status,
            policy=live,
            node=failed,
            lease=leases[FAILED_NODE],
            all_nodes=nodes,
            leases=leases,
            recorded_storm=StormState.restored(),
            remediation=None,
            pods_on_node=pods_on_node,
            vms=incident_vms(status=status, policy=policy, vms=vms, namespace_labels={"apps": {}}),
            vmis=vmis,
            launcher_pods=launchers,
            nodes=node_capacities(nodes=healthy, pods=pods, exclude={FAILED_NODE}),
            unfenced_safe=(),
            now=NOW + timedelta(seconds=after),
            monotonic=MONOTONIC_NOW + after,
            seen=seen[FAILED_NODE],
            sightings=seen,
            caches_synced=True,
        )
    )


def _later(seen: NodeSightings, after: float) -> NodeSightings:
    """The same observations, made `after` seconds later."""

    def move(sighting: Sighting | None) -> Sighting | None:
        return (
            None
            if sighting is None
            else Sighting(at=sighting.at + after, wall=sighting.wall + timedelta(seconds=after))
        )

    return NodeSightings(
        lease=move(seen.lease),
        kubevirt_heartbeat=move(seen.kubevirt_heartbeat),
        status_heartbeat=move(seen.status_heartbeat),
        conditions={kind: s for kind, sighting in seen.conditions.items() if (s := move(sighting)) is not None},
    )


def _stuck_world(names: Sequence[str]) -> tuple[list[VMView], dict[str, VMIView], list[PodView]]:
    vms = [_protected(name) for name in names]
    vmis = {vm.key: make_vmi(vm, uid=f"old-{vm.name}", node=FAILED_NODE) for vm in vms}
    pods = [make_launcher(vm, vmi_uid=f"old-{vm.name}", node=FAILED_NODE) for vm in vms]
    return vms, vmis, pods


def _restarting(vms: Sequence[VMView]) -> NodeFailoverStatus:
    """An incident in Restarting, opened under POLICY: the first VM runs again, the others wait
    for a restart slot (maxParallel 1)."""
    one_at_a_time = POLICY.model_copy(update={"restart": RestartSpec(max_parallel=1, tier_ordering=TierOrdering.NONE)})
    entries = [
        FailoverVM(
            namespace=vm.namespace,
            name=vm.name,
            priority="Medium",
            from_node=FAILED_NODE,
            old_vmi_uid=f"old-{vm.name}",
        )
        for vm in vms
    ]
    entries[0] = entries[0].model_copy(
        update={"state": VMState.RUNNING, "node": "worker-0", "restarted_at": ago(20), "running_at": ago(5)}
    )
    return NodeFailoverStatus(
        phase=FailoverPhase.RESTARTING,
        policy=one_at_a_time,
        fencing=FENCED,
        vms=entries,
        total=len(entries),
        started_at=ago(55),
    )


def test_a_new_incident_records_the_policy_and_the_vms_it_selected() -> None:
    vms, vmis, pods = _stuck_world(["a", "b"])
    outsider = make_vm("outsider")  # not selected by the policy's vmSelector
    vmis[outsider.key] = make_vmi(outsider, uid="old-outsider", node=FAILED_NODE)
    step = incident(status=NodeFailoverStatus(), live=POLICY, vms=[*vms, outsider], vmis=vmis, pods=pods)
    assert step.status.policy == POLICY
    assert [e.name for e in step.status.vms] == ["a", "b"]
    assert "policy" in step.status.to_api()
    assert NodeFailoverStatus.model_validate(step.status.to_api()).policy == POLICY


def test_deleting_the_policy_mid_incident_keeps_restarting_the_remaining_vms() -> None:
    vms, vmis, pods = _stuck_world(["a", "b", "c"])
    vmis[vms[0].key] = make_vmi(vms[0], uid="new-a", node="worker-0")
    status = _restarting(vms)
    for live in (None, POLICY.model_copy(update={"restart": RestartSpec(max_parallel=5)})):  # deleted, or edited
        step = incident(status=status, live=live, vms=vms, vmis=vmis, pods=pods)
        assert step.status.phase is FailoverPhase.RESTARTING, step.status.message
        assert [a.name for a in step.restart_actions] == ["b"]  # still maxParallel 1: the copy rules
        assert step.status.policy == status.policy
        assert step.outcome is None


def test_narrowing_the_vm_selector_mid_incident_does_not_abandon_its_vms() -> None:
    vms, vmis, pods = _stuck_world(["a", "b"])
    vmis[vms[0].key] = make_vmi(vms[0], uid="new-a", node="worker-0")
    status = _restarting(vms)
    narrowed = POLICY.model_copy(update={"vm_selector": LabelSelector(match_labels={"tier": "nothing"})})
    # The VMs' labels changed too, as a narrowing often goes: neither counts as deleted.
    relabelled = [replace(vm, labels={"tier": "other"}) for vm in vms]
    step = incident(status=status, live=narrowed, vms=relabelled, vmis=vmis, pods=pods)
    entry = {e.name: e for e in step.status.vms}["b"]
    assert entry.state is VMState.RESTARTING, entry.reason
    assert [a.name for a in step.restart_actions] == ["b"]


def test_a_deleted_policy_s_incident_completes_then_undoes_its_fencing_when_the_node_returns() -> None:
    vms, vmis, pods = _stuck_world(["a", "b"])
    status = _restarting(vms)
    restarted = incident(status=status, live=None, vms=vms, vmis=vmis, pods=pods)
    vmis = {vm.key: make_vmi(vm, uid=f"new-{vm.name}", node="worker-1") for vm in vms}
    completed = incident(status=restarted.status, live=None, vms=vms, vmis=vmis, after=30)
    assert completed.status.phase is FailoverPhase.COMPLETED
    assert completed.outcome == "Completed"
    # The host is powered on again: healthy, still tainted; nothing of the old guests on it.
    back = make_node(FAILED_NODE, ready_for=600, taints=(OUT_OF_SERVICE,))
    undo = incident(status=completed.status, live=None, vms=vms, vmis=vmis, node=back, after=700)
    assert RemoveOutOfServiceTaint(FAILED_NODE) in undo.fence_actions
    assert not undo.finished
    untainted = replace(back, taints=())
    done = incident(status=undo.status, live=None, vms=vms, vmis=vmis, node=untainted, after=710)
    assert done.finished
    assert done.status.fencing is not None
    assert done.status.fencing.taint_removed


def test_an_incident_opened_before_the_copy_existed_follows_the_live_policy_and_records_it() -> None:
    vms, vmis, pods = _stuck_world(["a", "b"])
    vmis[vms[0].key] = make_vmi(vms[0], uid="new-a", node="worker-0")
    old = _restarting(vms).model_copy(update={"policy": None})
    step = incident(status=old, live=POLICY, vms=vms, vmis=vmis, pods=pods)
    assert [a.name for a in step.restart_actions] == ["b"]
    assert step.status.policy == POLICY
    # Without a copy and without a live policy there is nothing to follow: as before, it fails.
    orphan = incident(status=old, live=None, vms=vms, vmis=vmis, pods=pods)
    assert orphan.status.phase is FailoverPhase.FAILED
    assert orphan.restart_actions == ()


def test_an_incident_with_no_policy_to_follow_fails_once_and_says_why() -> None:
    """An incident opened by a kvha without the policy copy, whose policy is then deleted, has
    nothing to decide restarts with: it fails at once (no restarts, a Warning) rather than
    waiting for a policy that may never come back."""
    vms, vmis, pods = _stuck_world(["a", "b"])
    fencing = NodeFailoverStatus(phase=FailoverPhase.FENCING, fencing=FENCED, started_at=ago(55))
    failed = incident(status=fencing, live=None, vms=vms, vmis=vmis, pods=pods)
    assert failed.status.phase is FailoverPhase.FAILED
    assert failed.outcome == "Failed"
    assert failed.status.completed_at == NOW
    assert (failed.fence_actions, failed.restart_actions) == ((), ())
    [event] = failed.events
    assert (event.reason, event.type) == ("PolicyGone", "Warning")
    assert failed.status.message == "HAPolicy production was deleted or is invalid; no further VM is restarted"


def test_a_terminal_incident_without_a_policy_is_not_failed_again() -> None:
    """A completed incident without a policy keeps its outcome and its record of fencing rather
    than being marked Failed (and posting PolicyGone) on every step while its node is down."""
    vms, vmis, _ = _stuck_world(["a"])
    done = NodeFailoverStatus(
        phase=FailoverPhase.COMPLETED, fencing=FENCED, started_at=ago(55), completed_at=ago(10), message="done"
    )
    step = incident(status=done, live=None, vms=vms, vmis=vmis, after=60)
    assert step.status.phase is FailoverPhase.COMPLETED
    assert step.outcome is None
    assert step.status.completed_at == ago(10)
    assert "PolicyGone" not in [e.reason for e in step.events]
    assert step.status.fencing == FENCED


def test_a_completed_incident_is_not_finished_while_its_node_stays_fenced() -> None:
    """Every VM runs again, but the dead node still carries the taint this incident applied: the
    handler must keep driving it, or nobody removes the taint when the host comes back."""
    vms, _, _ = _stuck_world(["a"])
    vmis = {vm.key: make_vmi(vm, uid=f"new-{vm.name}", node="worker-1") for vm in vms}
    restarted = _restarting(vms)
    completed = incident(status=restarted, live=None, vms=vms, vmis=vmis)
    assert completed.status.phase is FailoverPhase.COMPLETED
    assert completed.status.waiting == 0
    assert not completed.finished
    still_down = incident(status=completed.status, live=None, vms=vms, vmis=vmis, after=600)
    assert not still_down.finished


def test_a_completed_incident_whose_node_stays_down_writes_the_same_status_at_every_later_step() -> None:
    """Each status write wakes the incident's next step (its own watch event): a completed incident
    whose status changed with the clock alone wrote itself once a second for as long as its host
    stayed dead (the leader's steady CPU at 100 nodes, bench/scale_bench.py)."""
    vms, _, _ = _stuck_world(["a"])
    vmis = {vm.key: make_vmi(vm, uid=f"new-{vm.name}", node="worker-1") for vm in vms}
    completed = incident(status=_restarting(vms), live=None, vms=vms, vmis=vmis)
    assert completed.status.phase is FailoverPhase.COMPLETED
    assert completed.status.message is not None
    assert "completed 1m after detection" in completed.status.message
    for after in (1, 30, 600):
        later = incident(status=completed.status, live=None, vms=vms, vmis=vmis, after=after)
        assert later.status.to_api() == completed.status.to_api()
