"""The failover planner: which of a failed node's VMs restart, where there is room, in what order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from core.strategies import FAILED_NODE, GI, NOW, make_launcher, make_node, make_vm, make_vmi, restart_spec
from kvha.constants import REASON_VM_RESTARTING, REASON_VM_RESTORED, REASON_VM_UNPROTECTED, REASON_VM_WAITING
from kvha.models.base import Priority
from kvha.models.hapolicy import RestartSpec, TierOrdering
from kvha.models.nodefailover import FailoverVM, VMState
from kvha.models.views import PodView, VMIView, VMView
from kvha.placement import node_capacities
from kvha.planner import FailoverPlan, FailoverSnapshot, RestartVM, initial_entries, plan_failover


def snapshot(
    vms: Sequence[VMView],
    *,
    entries: Sequence[FailoverVM] | None = None,
    vmis: dict[str, VMIView] | None = None,
    pods: Sequence[PodView] | None = None,
    nodes: int = 2,
    node_memory: int = 256 * GI,
    fenced: bool = True,
    unfenced_allowed: bool = False,
    unfenced_safe: frozenset[str] = frozenset(),
    restart: RestartSpec | None = None,
    after: float = 0,
) -> FailoverSnapshot:
    """A failed node whose VMs each have their stuck instance and launcher pod on it."""
    if vmis is None:
        vmis = {vm.key: make_vmi(vm, uid=f"old-{vm.name}", node=FAILED_NODE) for vm in vms}
    if pods is None:
        pods = [make_launcher(vm, vmi_uid=f"old-{vm.name}", node=FAILED_NODE) for vm in vms]
    healthy = [make_node(f"worker-{i}", memory=node_memory) for i in range(nodes)]
    if entries is None:
        entries = initial_entries(vms=vms, vmis=vmis, failed_node=FAILED_NODE, default_priority=Priority.MEDIUM)
    launchers: dict[str, list[PodView]] = {}
    for pod in pods:
        launchers.setdefault(pod.vmi_uid or "", []).append(pod)
    return FailoverSnapshot(
        failed_node=FAILED_NODE,
        entries=tuple(entries),
        vms={vm.key: vm for vm in vms},
        vmis=vmis,
        launcher_pods=launchers,
        nodes=node_capacities(nodes=healthy, pods=pods, exclude={FAILED_NODE}),
        fenced=fenced,
        unfenced_allowed=unfenced_allowed,
        unfenced_safe=unfenced_safe,
        restart=restart or restart_spec(),
        now=NOW + timedelta(seconds=after),
    )


def states(plan: FailoverPlan) -> dict[str, VMState]:
    return {e.name: e.state for e in plan.entries}


def test_a_new_incident_lists_the_vms_that_ran_on_the_failed_node_highest_priority_first() -> None:
    web, db, elsewhere = make_vm("web"), make_vm("db", priority="Highest"), make_vm("batch")
    vmis = {
        web.key: make_vmi(web, uid="u-web", node=FAILED_NODE),
        db.key: make_vmi(db, uid="u-db", node=FAILED_NODE),
        elsewhere.key: make_vmi(elsewhere, uid="u-batch", node="worker-0"),
    }
    entries = initial_entries(
        vms=[web, db, elsewhere], vmis=vmis, failed_node=FAILED_NODE, default_priority=Priority.LOW
    )
    assert [(e.name, e.priority, e.old_vmi_uid, e.state) for e in entries] == [
        ("db", Priority.HIGHEST, "u-db", VMState.PENDING),
        ("web", Priority.LOW, "u-web", VMState.PENDING),
    ]


def test_nothing_restarts_before_the_node_is_fenced() -> None:
    plan = plan_failover(snapshot([make_vm("web")], fenced=False))
    assert plan.actions == ()
    assert plan.entries[0].state is VMState.PENDING
    assert plan.entries[0].reason == f"waiting for node {FAILED_NODE} to be fenced"


def test_a_fenced_node_s_vm_is_restarted_by_removing_its_stuck_instance() -> None:
    web = make_vm("web")
    plan = plan_failover(snapshot([web]))
    assert plan.actions == (
        RestartVM(
            namespace="apps",
            name="web",
            vmi_name="web",
            vmi_uid="old-web",
            launcher_pods=("virt-launcher-web-d-web",),
            from_node=FAILED_NODE,
        ),
    )
    [entry] = plan.entries
    assert (entry.state, entry.planned_node, entry.restarted_at) == (VMState.RESTARTING, "worker-0", NOW)
    [event] = plan.events
    assert event.reason == REASON_VM_RESTARTING
    assert event.vm == "apps/web"
    assert plan.recheck_after == 10


def test_without_fencing_only_vms_safe_to_run_twice_restart() -> None:
    stateless, database = make_vm("stateless"), make_vm("database")
    plan = plan_failover(
        snapshot([stateless, database], fenced=False, unfenced_allowed=True, unfenced_safe=frozenset({stateless.key}))
    )
    assert [a.name for a in plan.actions] == ["stateless"]
    assert states(plan)["database"] is VMState.SKIPPED
    skipped = next(e for e in plan.entries if e.name == "database")
    assert "kvha.io/allow-unfenced-restart=true" in (skipped.reason or "")


def test_at_most_max_parallel_vms_restart_at_once_counting_those_already_restarting() -> None:
    vms = [make_vm(f"vm{i}") for i in range(6)]
    first = plan_failover(snapshot(vms, restart=restart_spec(max_parallel=4)))
    assert len(first.actions) == 4
    assert sum(s is VMState.RESTARTING for s in states(first).values()) == 4
    waiting = [e for e in first.entries if e.state is VMState.PENDING]
    assert {e.reason for e in waiting} == {"waiting for a restart slot: 4 VMs (maxParallel) are restarting"}
    second = plan_failover(snapshot(vms, entries=first.entries, restart=restart_spec(max_parallel=4), after=1))
    assert second.actions == ()


def test_planning_again_on_the_same_snapshot_repeats_nothing_and_retries_only_after_a_while() -> None:
    web = make_vm("web")
    first = plan_failover(snapshot([web]))
    again = plan_failover(snapshot([web], entries=first.entries))
    assert again.actions == ()
    assert again.events == ()
    retry = plan_failover(snapshot([web], entries=first.entries, after=10))
    assert [a.vmi_uid for a in retry.actions] == ["old-web"]  # the old instance is still there
    assert retry.entries[0].last_attempt_at == NOW + timedelta(seconds=10)
    assert retry.entries[0].restarted_at == NOW  # when the restart began
    assert retry.events[0].type == "Warning"


def test_a_restart_that_took_effect_is_not_retried() -> None:
    web = make_vm("web")
    first = plan_failover(snapshot([web]))
    gone = {web.key: make_vmi(web, uid="old-web", node=FAILED_NODE, phase="Failed")}
    later = plan_failover(snapshot([web], entries=first.entries, vmis=gone, pods=[], after=60))
    assert later.actions == ()
    assert states(later)["web"] is VMState.RESTARTING


def test_a_restarted_vm_is_running_once_its_new_instance_runs() -> None:
    web = make_vm("web")
    first = plan_failover(snapshot([web]))
    new = {web.key: make_vmi(web, uid="new-web", node="worker-1")}
    done = plan_failover(snapshot([web], entries=first.entries, vmis=new, pods=[], after=42))
    [entry] = done.entries
    assert (entry.state, entry.node, entry.running_at) == (VMState.RUNNING, "worker-1", NOW + timedelta(seconds=42))
    assert done.events[0].reason == REASON_VM_RESTORED
    assert done.events[0].message == "VM apps/web runs again on node worker-1, 42s after its restart"
    assert done.settled
    assert done.restored == 1
    assert done.recheck_after is None


def test_a_vm_already_running_elsewhere_is_left_alone() -> None:
    web = make_vm("web")
    entries = snapshot([web]).entries
    moved = {web.key: make_vmi(web, uid="new-web", node="worker-0")}
    plan = plan_failover(snapshot([web], entries=entries, vmis=moved))
    assert plan.actions == ()
    assert states(plan)["web"] is VMState.RUNNING


def test_a_vm_running_again_on_the_recovered_node_is_never_killed() -> None:
    web = make_vm("web")
    entries = snapshot([web]).entries
    back = {web.key: make_vmi(web, uid="new-web", node=FAILED_NODE)}
    plan = plan_failover(snapshot([web], entries=entries, vmis=back, pods=[]))
    assert plan.actions == ()
    assert states(plan)["web"] is VMState.RUNNING


def test_vms_kvha_must_not_restart_are_skipped_with_the_reason() -> None:
    halted, disabled, deleted = (
        make_vm("halted", run_strategy="Halted"),
        make_vm("off", priority="Disabled"),
        make_vm("gone"),
    )
    entries = snapshot([halted, disabled, deleted]).entries
    plan = plan_failover(snapshot([halted, disabled], entries=entries))
    assert plan.actions == ()
    reasons = {e.name: (e.state, e.reason) for e in plan.entries}
    assert reasons["gone"] == (VMState.SKIPPED, "the VirtualMachine was deleted")
    assert reasons["halted"] == (VMState.SKIPPED, "runStrategy Halted: the VM is meant to be stopped")
    assert reasons["off"][0] is VMState.SKIPPED
    assert "Disabled" in (reasons["off"][1] or "")
    assert {e.reason for e in plan.events} == {REASON_VM_UNPROTECTED}
    assert plan.settled


def test_a_vm_that_fits_nowhere_waits_with_the_reason_and_restarts_when_room_appears() -> None:
    huge = make_vm("huge", memory=300 * GI)
    plan = plan_failover(snapshot([huge]))
    [entry] = plan.entries
    assert entry.state is VMState.WAITING_FOR_CAPACITY
    assert entry.reason == (
        "none of the 2 nodes it may run on has 2100m CPU and 300.3Gi memory free (the most free memory is 256Gi)"
    )
    assert plan.events[0].reason == REASON_VM_WAITING
    assert plan.events[0].type == "Warning"
    assert plan.recheck_after == 30
    still = plan_failover(snapshot([huge], entries=plan.entries, after=30))
    assert still.events == ()
    roomy = plan_failover(snapshot([huge], entries=plan.entries, node_memory=512 * GI, after=60))
    assert states(roomy)["huge"] is VMState.RESTARTING


def test_room_promised_to_a_restart_in_flight_is_not_given_away() -> None:
    first_vm, second_vm = make_vm("first", memory=150 * GI), make_vm("second", memory=150 * GI)
    one_node = {"nodes": 1, "node_memory": 200 * GI}
    first = plan_failover(snapshot([first_vm], **one_node))  # type: ignore[arg-type]
    assert states(first)["first"] is VMState.RESTARTING
    entries = [*first.entries, *snapshot([second_vm]).entries]
    vmis = {
        first_vm.key: make_vmi(first_vm, uid="new-first", node=None, phase="Scheduling"),
        second_vm.key: make_vmi(second_vm, uid="old-second", node=FAILED_NODE),
    }
    pods = [make_launcher(second_vm, vmi_uid="old-second", node=FAILED_NODE)]
    second = plan_failover(snapshot([first_vm, second_vm], entries=entries, vmis=vmis, pods=pods, after=5, **one_node))  # type: ignore[arg-type]
    assert states(second)["second"] is VMState.WAITING_FOR_CAPACITY


def test_with_wait_for_ready_a_lower_tier_waits_for_the_higher_one() -> None:
    critical, normal = make_vm("critical", priority="High"), make_vm("normal", priority="Low")
    ordered = restart_spec(tier_ordering=TierOrdering.WAIT_FOR_READY)
    first = plan_failover(snapshot([critical, normal], restart=ordered))
    assert [a.name for a in first.actions] == ["critical"]
    held = next(e for e in first.entries if e.name == "normal")
    assert held.state is VMState.PENDING
    assert held.reason == (
        "waiting for the High tier to be running, at most until 2026-03-01T12:02:00Z (tierTimeout 2m)"
    )

    running = {
        critical.key: make_vmi(critical, uid="new-critical", node="worker-0"),
        normal.key: make_vmi(normal, uid="old-normal", node=FAILED_NODE),
    }
    next_tier = plan_failover(
        snapshot([critical, normal], entries=first.entries, vmis=running, restart=ordered, after=20)
    )
    assert [a.name for a in next_tier.actions] == ["normal"]


def test_a_lower_tier_starts_anyway_once_the_tier_timeout_passes() -> None:
    critical, normal = make_vm("critical", priority="High"), make_vm("normal", priority="Low")
    ordered = restart_spec(tier_ordering=TierOrdering.WAIT_FOR_READY)
    first = plan_failover(snapshot([critical, normal], restart=ordered))
    booting = {
        critical.key: make_vmi(critical, uid="new-critical", node="worker-0", phase="Scheduled"),
        normal.key: make_vmi(normal, uid="old-normal", node=FAILED_NODE),
    }
    pods = [make_launcher(normal, vmi_uid="old-normal", node=FAILED_NODE)]
    stuck = plan_failover(
        snapshot([critical, normal], entries=first.entries, vmis=booting, pods=pods, restart=ordered, after=119)
    )
    assert stuck.actions == ()
    assert stuck.recheck_after == 1
    late = plan_failover(
        snapshot([critical, normal], entries=first.entries, vmis=booting, pods=pods, restart=ordered, after=120)
    )
    assert [a.name for a in late.actions] == ["normal"]


def test_a_higher_tier_whose_restart_does_not_take_effect_does_not_hold_up_the_next() -> None:
    critical, normal = make_vm("critical", priority="High"), make_vm("normal", priority="Low")
    ordered = restart_spec(tier_ordering=TierOrdering.WAIT_FOR_READY)
    first = plan_failover(snapshot([critical, normal], restart=ordered))
    retried = plan_failover(snapshot([critical, normal], entries=first.entries, restart=ordered, after=10))
    assert sorted(a.name for a in retried.actions) == ["critical", "normal"]


def test_a_higher_tier_waiting_for_capacity_does_not_hold_up_the_next_tier() -> None:
    huge, normal = make_vm("huge", priority="High", memory=400 * GI), make_vm("normal", priority="Low")
    plan = plan_failover(snapshot([huge, normal], restart=restart_spec(tier_ordering=TierOrdering.WAIT_FOR_READY)))
    assert states(plan) == {"huge": VMState.WAITING_FOR_CAPACITY, "normal": VMState.RESTARTING}


def test_a_stuck_instance_replaced_without_kvha_is_followed_not_restarted() -> None:
    web = make_vm("web")
    entries = snapshot([web]).entries
    replaced = {web.key: make_vmi(web, uid="new-web", node=None, phase="Scheduling")}
    plan = plan_failover(snapshot([web], entries=entries, vmis=replaced, pods=[]))
    assert plan.actions == ()
    assert states(plan)["web"] is VMState.RESTARTING


def test_the_plan_counts_what_the_status_shows() -> None:
    vms = [make_vm("a"), make_vm("b", memory=400 * GI), make_vm("c", run_strategy="Manual")]
    plan = plan_failover(snapshot(vms))
    assert (plan.total, plan.restored, plan.waiting, plan.settled) == (3, 0, 1, False)
    assert replace(plan, entries=()).settled


def test_a_replacement_the_scheduler_cannot_place_waits_for_capacity_without_holding_a_slot() -> None:
    """KubeVirt may recreate a VM itself once the out-of-service taint removed its pod; if no node
    has room, the VM waits for capacity (the incident can complete) instead of 'Restarting' forever."""
    now = NOW
    vm = VMView(
        namespace="ns", name="big", run_strategy="Always", memory_bytes=2**33, printable_status="ErrorUnschedulable"
    )
    entry = FailoverVM(
        namespace="ns",
        name="big",
        priority="Medium",
        from_node="dead",
        state=VMState.RESTARTING,
        old_vmi_uid="old",
        restarted_at=now,
    )
    snapshot = FailoverSnapshot(
        failed_node="dead",
        entries=[entry],
        vms={vm.key: vm},
        vmis={vm.key: VMIView(namespace="ns", name="big", uid="new", node_name=None, phase="Scheduling")},
        launcher_pods={},
        nodes=[],
        fenced=True,
        unfenced_allowed=False,
        unfenced_safe=set(),
        restart=RestartSpec(max_parallel=1),
        now=now,
    )
    plan = plan_failover(snapshot)
    assert plan.entries[0].state is VMState.WAITING_FOR_CAPACITY
    assert plan.actions == ()
    again = plan_failover(replace(snapshot, entries=plan.entries))
    assert again.actions == ()
    assert again.entries[0].state is VMState.WAITING_FOR_CAPACITY
