"""Properties of the failover planner over whole incidents: plan, let KubeVirt react (or an API
call fail), let time pass, plan again — and check the promises at every step."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from core.strategies import FAILED_NODE, World, make_launcher, make_vmi, worlds
from kvha.models.base import Priority
from kvha.models.nodefailover import FailoverVM, VMState
from kvha.models.resources import Resources
from kvha.models.views import PodView
from kvha.placement import fits, launcher_placement, launcher_requests, node_capacities
from kvha.planner import FailoverPlan, FailoverSnapshot, holds_restart_slot, initial_entries, plan_failover


def snapshot_of(world: World, entries: tuple[FailoverVM, ...]) -> FailoverSnapshot:
    return FailoverSnapshot(
        failed_node=FAILED_NODE,
        entries=entries,
        vms=world.vms,
        vmis=world.vmis,
        launcher_pods=world.launcher_pods(),
        nodes=node_capacities(nodes=world.nodes, pods=world.pods, exclude={FAILED_NODE}),
        fenced=world.fenced,
        unfenced_allowed=world.unfenced_allowed,
        unfenced_safe=world.unfenced_safe,
        restart=world.restart,
        now=world.now,
    )


def old_pod(world: World, entry: FailoverVM) -> PodView | None:
    pods = [p for p in world.pods if p.vmi_uid == entry.old_vmi_uid]
    return next((p for p in pods if not p.terminal), pods[0] if pods else None)


def committed(world: World, entries: tuple[FailoverVM, ...]) -> dict[str, Resources]:
    """Per healthy node: requests of the pods bound there plus what restarts in flight will bring."""
    used: dict[str, Resources] = defaultdict(lambda: Resources.ZERO)
    for pod in world.pods:
        if pod.node_name and pod.node_name != FAILED_NODE and not pod.terminal:
            used[pod.node_name] += Resources(cpu_millis=pod.cpu_millis, memory_bytes=pod.memory_bytes)
    for entry in entries:
        if entry.state is not VMState.RESTARTING or entry.planned_node is None:
            continue
        vmi = world.vmis.get(entry.key)
        if (
            vmi is not None
            and vmi.uid != entry.old_vmi_uid
            and any(p.vmi_uid == vmi.uid and p.node_name for p in world.pods)
        ):
            continue
        used[entry.planned_node] += launcher_requests(world.vms[entry.key], old_pod(world, entry))
    return used


def check(world: World, snapshot: FailoverSnapshot, plan: FailoverPlan) -> None:
    before = {e.key: e for e in snapshot.entries}
    after = {e.key: e for e in plan.entries}
    new_restarts = [a for a in plan.actions if before[a.key].state is not VMState.RESTARTING]

    for action in plan.actions:  # never restart from a node that is not fenced
        assert world.fenced or (world.unfenced_allowed and action.key in world.unfenced_safe)
        assert action.from_node == FAILED_NODE
        assert action.vmi_uid == before[action.key].old_vmi_uid
        vmi = world.vmis.get(action.key)
        assert vmi is None or vmi.uid != action.vmi_uid or vmi.node_name == FAILED_NODE

    if new_restarts:  # never more than maxParallel holding a restart slot at once
        assert sum(holds_restart_slot(e, snapshot) for e in plan.entries) <= world.restart.max_parallel

    nodes = {n.name: n for n in world.nodes}
    for action in new_restarts:  # never onto a node the VM may not use
        entry = after[action.key]
        assert entry.planned_node is not None
        placement = launcher_placement(world.vms[action.key], old_pod(world, entry))
        assert fits(placement, nodes[entry.planned_node])
    allocatable = {
        name: Resources(cpu_millis=node.allocatable_cpu_millis, memory_bytes=node.allocatable_memory_bytes)
        for name, node in nodes.items()
    }
    for name, used in committed(world, plan.entries).items():  # nor one it does not fit
        assert used.fits(allocatable[name]), name

    # A higher priority VM is never left waiting while a lower one restarts on room it needed.
    free = {name: allocatable[name] - used for name, used in committed(world, plan.entries).items()}
    for waiting in (e for e in plan.entries if e.state is VMState.WAITING_FOR_CAPACITY):
        vm = world.vms[waiting.key]
        need = launcher_requests(vm, old_pod(world, waiting))
        for action in new_restarts:
            lower = after[action.key]
            if lower.planned_node is None or _rank(lower) >= _rank(waiting):
                continue
            freed = launcher_requests(world.vms[lower.key], old_pod(world, lower))
            node = lower.planned_node
            assert not (
                fits(launcher_placement(vm, old_pod(world, waiting)), nodes[node])
                and need.fits(free.get(node, Resources.ZERO) + freed)
            ), f"{lower.key} took room on {node} that {waiting.key} needed"

    # Planning again on what was just decided, at the same moment, does nothing new.
    again = plan_failover(replace(snapshot, entries=plan.entries))
    assert again.actions == ()
    assert [_decision(e) for e in again.entries] == [_decision(e) for e in plan.entries]


def _decision(entry: FailoverVM) -> tuple[object, ...]:
    """What a plan decided for a VM (its reason may quote capacity figures that have moved)."""
    return entry.key, entry.state, entry.planned_node, entry.restarted_at, entry.node


def _rank(entry: FailoverVM) -> int:
    return int(entry.priority)


def play_kubevirt(world: World, plan: FailoverPlan, data: st.DataObject) -> None:
    """Actuation removes the stuck instance (unless the API call fails); KubeVirt starts a new one
    where the scheduler puts it — here on the planned node — and it boots later."""
    planned = {e.key: e.planned_node for e in plan.entries}
    for action in plan.actions:
        if not data.draw(st.booleans().map(lambda ok: ok or False), label="actuation works"):
            continue
        world.pods = [p for p in world.pods if p.vmi_uid != action.vmi_uid]
        vm = world.vms[action.key]
        world.counter += 1
        uid = f"vmi-{vm.name}-{world.counter}"
        node = planned.get(action.key)
        world.vmis[action.key] = make_vmi(vm, uid=uid, node=node, phase="Scheduled")
        world.pods.append(make_launcher(vm, vmi_uid=uid, node=node, phase="Pending"))
    for key, vmi in list(world.vmis.items()):
        if vmi.phase == "Scheduled" and data.draw(st.booleans(), label=f"{key} boots"):
            world.vmis[key] = replace(vmi, phase="Running", ready=True)


@settings(max_examples=150, deadline=None)
@given(world=worlds(), data=st.data())
def test_failover_promises_hold_through_an_incident(world: World, data: st.DataObject) -> None:
    entries = tuple(
        initial_entries(
            vms=world.vms.values(), vmis=world.vmis, failed_node=FAILED_NODE, default_priority=Priority.MEDIUM
        )
    )
    for _ in range(data.draw(st.integers(1, 8), label="rounds")):
        snapshot = snapshot_of(world, entries)
        plan = plan_failover(snapshot)
        check(world, snapshot, plan)
        entries = plan.entries
        play_kubevirt(world, plan, data)
        world.now += timedelta(seconds=data.draw(st.sampled_from((1, 5, 10, 30, 130)), label="seconds pass"))
        if not world.fenced and data.draw(st.booleans(), label="fence confirmed"):
            world.fenced, world.unfenced_allowed = True, False
