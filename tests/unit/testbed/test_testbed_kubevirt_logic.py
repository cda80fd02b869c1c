"""The simulated virt-controller's decisions: run strategies, VM status, VMI phases."""

from __future__ import annotations

import pytest

from kvha_testbed.sim.vm_logic import VmAction, decide, printable_status, run_strategy, vm_status, vmi_for
from kvha_testbed.sim.vmi_logic import plan_vmi, pod_alive

NOW = "2026-01-01T00:00:00Z"


def _vm(strategy: str | None = "Always", *, running: bool | None = None, requests: list | None = None) -> dict:
    spec: dict = {"template": {"metadata": {"labels": {"app": "x"}}, "spec": {"domain": {"devices": {}}}}}
    if strategy:
        spec["runStrategy"] = strategy
    if running is not None:
        spec["running"] = running
    status = {"stateChangeRequests": requests} if requests else {}
    return {"metadata": {"name": "vm", "namespace": "ns", "uid": "vm-uid"}, "spec": spec, "status": status}


def _vmi(phase: str = "Running", *, deleting: bool = False, conditions: list | None = None) -> dict:
    meta: dict = {"name": "vm", "namespace": "ns", "uid": "vmi-uid"}
    if deleting:
        meta["deletionTimestamp"] = NOW
    return {"metadata": meta, "status": {"phase": phase, "conditions": conditions or []}}


@pytest.mark.parametrize(
    ("strategy", "phase", "action"),
    [
        ("Always", None, VmAction.CREATE_VMI),
        ("Always", "Running", VmAction.NONE),
        ("Always", "Failed", VmAction.DELETE_VMI),
        ("Always", "Succeeded", VmAction.DELETE_VMI),
        ("RerunOnFailure", None, VmAction.CREATE_VMI),
        ("RerunOnFailure", "Failed", VmAction.DELETE_VMI),
        ("RerunOnFailure", "Succeeded", VmAction.NONE),
        ("Once", None, VmAction.CREATE_VMI),
        ("Once", "Failed", VmAction.NONE),
        ("Manual", None, VmAction.NONE),
        ("Manual", "Failed", VmAction.NONE),
        ("Halted", None, VmAction.NONE),
        ("Halted", "Running", VmAction.DELETE_VMI),
    ],
)
def test_run_strategies(strategy: str, phase: str | None, action: VmAction) -> None:
    assert decide(_vm(strategy), None if phase is None else _vmi(phase)).action is action


def test_no_new_vmi_while_the_old_one_is_being_deleted() -> None:
    assert decide(_vm("Always"), _vmi("Failed", deleting=True)).action is VmAction.NONE


def test_legacy_running_flag() -> None:
    assert run_strategy(_vm(None, running=True)) == "Always"
    assert run_strategy(_vm(None, running=False)) == "Halted"
    assert run_strategy(_vm(None)) == "Halted"


def test_state_change_requests() -> None:
    start = decide(_vm("Manual", requests=[{"action": "Start"}]), None)
    assert (start.action, start.consumed_requests) == (VmAction.CREATE_VMI, 1)
    assert decide(_vm("Manual", requests=[{"action": "Stop"}]), _vmi()).action is VmAction.DELETE_VMI
    assert decide(_vm("Always", requests=[{"action": "Stop"}]), None).consumed_requests == 1


def test_vmi_for_copies_the_template_and_is_owned() -> None:
    vmi = vmi_for(_vm())
    assert vmi["metadata"]["labels"] == {"app": "x"}
    assert vmi["metadata"]["ownerReferences"][0]["uid"] == "vm-uid"
    assert vmi["metadata"]["finalizers"] == ["foregroundDeleteVirtualMachine"]
    assert vmi["spec"] == {"domain": {"devices": {}}}


def test_printable_status() -> None:
    ready = [{"type": "Ready", "status": "True"}]
    unschedulable = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
    assert printable_status(_vm(), None) == "Stopped"
    assert printable_status(_vm(), _vmi("Scheduling")) == "Starting"
    assert printable_status(_vm(), _vmi("Scheduling", conditions=unschedulable)) == "ErrorUnschedulable"
    assert printable_status(_vm(), _vmi("Running", conditions=ready)) == "Running"
    assert printable_status(_vm(), _vmi("Failed")) == "Stopped"
    assert printable_status(_vm(), _vmi("Running", deleting=True)) == "Stopping"
    status = vm_status(_vm(), _vmi("Running", conditions=ready), now=NOW)
    assert (status["ready"], status["created"], status["printableStatus"]) == (True, True, "Running")


def _pod(*, node: str = "n1", phase: str = "Running", ready: bool = True, deleting: bool = False) -> dict:
    meta: dict = {"uid": "pod-uid", "creationTimestamp": NOW}
    if deleting:
        meta["deletionTimestamp"] = NOW
    return {
        "metadata": meta,
        "spec": {"nodeName": node},
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": str(ready)}]},
    }


def test_pending_vmi_creates_its_launcher_pod() -> None:
    plan = plan_vmi(_vmi("Pending"), [], node_up=True, guest_live=False, now=NOW)
    assert plan.create_pod
    assert plan.status is not None
    assert plan.status["phase"] == "Scheduling"


def test_running_pod_on_live_node_boots_the_guest() -> None:
    plan = plan_vmi(_vmi("Scheduled"), [_pod()], node_up=True, guest_live=False, now=NOW)
    assert plan.start_guest
    assert plan.status is not None
    assert plan.status["phase"] == "Running"
    assert plan.status["nodeName"] == "n1"
    assert plan.labels == {"kubevirt.io/nodeName": "n1"}


def test_pod_gone_on_live_node_fails_the_vmi_and_kills_the_guest() -> None:
    plan = plan_vmi(_vmi("Running"), [], node_up=True, guest_live=True, now=NOW)
    assert plan.status is not None
    assert plan.status["phase"] == "Failed"
    assert plan.stop_guest


def test_pod_gone_on_dead_node_fails_the_vmi_but_the_guest_may_live_on() -> None:
    """Real virt-controller (watch/vmi/lifecycle.go) fails a podless VMI whatever its node's state;
    on a partitioned node nobody kills the guest."""
    plan = plan_vmi(_vmi("Running"), [], node_up=False, guest_live=True, now=NOW)
    assert plan.status is not None
    assert plan.status["phase"] == "Failed"
    assert not plan.stop_guest


def test_terminating_pod_on_dead_node_keeps_the_vmi_running_but_not_ready() -> None:
    plan = plan_vmi(
        _vmi("Running", conditions=[{"type": "Ready", "status": "True"}]),
        [_pod(ready=False, deleting=True)],
        node_up=False,
        guest_live=True,
        now=NOW,
    )
    assert plan.status is not None
    assert "phase" not in plan.status
    assert {c["type"]: c["status"] for c in plan.status["conditions"]}["Ready"] == "False"
    assert pod_alive(_pod(deleting=True))


def test_failed_vmi_on_live_node_kills_the_guest_but_not_on_a_partitioned_one() -> None:
    assert plan_vmi(_vmi("Failed"), [], node_up=True, guest_live=True, now=NOW).stop_guest
    assert plan_vmi(_vmi("Failed"), [], node_up=False, guest_live=True, now=NOW).stop_guest is None
