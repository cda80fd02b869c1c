"""Tenants cannot make kvha delete each other's pods: a restart deletes only the stuck instance's
own launcher (in the VMI's namespace, controlled by the VMI, bound to the failed node), never a pod
that merely carries the VMI's `kubevirt.io/created-by` label, nor KubeVirt's migration target."""

from __future__ import annotations

from dataclasses import replace

from core.strategies import FAILED_NODE, make_launcher, make_vm
from core.test_failover import snapshot
from kvha.handlers.indices import launchers_by_vmi
from kvha.models.nodefailover import VMState
from kvha.models.views import PodView
from kvha.planner import plan_failover


def victim_pods() -> tuple[PodView, list[PodView]]:
    vm = make_vm("db", namespace="victim")
    launcher = make_launcher(vm, vmi_uid="old-db", node=FAILED_NODE)
    # A tenant who learnt the VMI's uid labels pods of its own with it, one on the failed node.
    forged = [
        replace(launcher, namespace="attacker", name="bait-1", controller_kind=None, controller_uid=None),
        replace(launcher, name="bait-2", controller_kind="ReplicaSet", controller_uid="uid-rs"),
        replace(launcher, namespace="attacker", name="bait-3"),  # claims the victim's VMI as owner
    ]
    return launcher, forged


def test_a_restart_deletes_only_the_stuck_instance_s_own_launcher() -> None:
    launcher, forged = victim_pods()
    vm = make_vm("db", namespace="victim")
    [action] = plan_failover(snapshot([vm], pods=[launcher, *forged])).actions
    assert action.launcher_pods == (launcher.name,)
    assert action.namespace == "victim"


def test_a_migration_target_on_a_healthy_node_is_never_deleted_nor_waited_for() -> None:
    """KubeVirt's migration target pod is controlled by the same VMI, but runs on another node."""
    vm = make_vm("db", namespace="victim")
    launcher = make_launcher(vm, vmi_uid="old-db", node=FAILED_NODE)
    target = replace(launcher, name="virt-launcher-db-target", node_name="worker-0")
    [action] = plan_failover(snapshot([vm], pods=[launcher, target])).actions
    assert action.launcher_pods == (launcher.name,)

    # The stuck launcher is gone, the target still runs elsewhere: it is not the stuck instance.
    plan = plan_failover(snapshot([vm], pods=[target]))
    assert all(target.name not in a.launcher_pods for a in plan.actions)


def test_forged_pods_alone_are_not_the_stuck_instance() -> None:
    _, forged = victim_pods()
    vm = make_vm("db", namespace="victim")
    plan = plan_failover(snapshot([vm], pods=forged))
    assert all(not a.launcher_pods for a in plan.actions)
    assert plan.entries[0].state is VMState.RESTARTING


def launcher_body(*, namespace: str, label_uid: str, owner_uid: str | None) -> dict[str, object]:
    meta: dict[str, object] = {
        "name": "virt-launcher-db-abcde",
        "namespace": namespace,
        "labels": {"kubevirt.io": "virt-launcher", "kubevirt.io/created-by": label_uid},
    }
    if owner_uid:
        meta["ownerReferences"] = [
            {"kind": "Other", "name": "x", "uid": "uid-other", "controller": False},
            {"kind": "VirtualMachineInstance", "name": "db", "uid": owner_uid, "controller": True},
        ]
    return {"metadata": meta, "spec": {"nodeName": FAILED_NODE}, "status": {"phase": "Running"}}


def test_the_launcher_index_is_keyed_by_the_controlling_vmi_not_by_the_label() -> None:
    real = launchers_by_vmi(launcher_body(namespace="victim", label_uid="old-db", owner_uid="old-db"))
    assert real is not None
    assert list(real) == ["old-db"]
    assert real["old-db"].runs_instance(namespace="victim", vmi_uid="old-db")
    assert launchers_by_vmi(launcher_body(namespace="attacker", label_uid="old-db", owner_uid=None)) is None
    forged = launchers_by_vmi(launcher_body(namespace="attacker", label_uid="old-db", owner_uid="uid-mine"))
    assert forged is not None
    assert list(forged) == ["uid-mine"]
