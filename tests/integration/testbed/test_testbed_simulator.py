"""The simulated fallback (KubeVirtMode.SIMULATED) against the real control plane, pinned.

The session testbed runs KubeVirt's real controllers; these tests get a simulated one of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kvha_testbed.build import ensure_built
from kvha_testbed.kube import FENCE_AGENTS_REMEDIATIONS, NODES, PODS, SELF_NODE_REMEDIATIONS, VMIS, VMS
from kvha_testbed.kubevirt_sim import Power, vm_key
from kvha_testbed.objects import vm_manifest
from kvha_testbed.testbed import KubeVirtMode, Testbed, TestbedConfig
from kvha_testbed.waiting import holds_for, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def plane() -> Iterator[Testbed]:
    with Testbed(ensure_built(), TestbedConfig(kubevirt=KubeVirtMode.SIMULATED)) as bed:
        yield bed


Obj = dict[str, Any]


def _start_vm(plane: Testbed, namespace: str, name: str, **kwargs: Any) -> Obj:
    plane.client.create(VMS.path(namespace), vm_manifest(name, namespace=namespace, **kwargs))
    plane.wait_vm_status(namespace, name, "Running")
    vmi = plane.vmi(namespace, name)
    assert vmi is not None
    return vmi


def _launcher(plane: Testbed, namespace: str, name: str) -> Obj:
    pods = plane.sim.launcher_pods(namespace, name)
    assert len(pods) == 1, pods
    return pods[0]


def _wait_unreachable(plane: Testbed, node: str) -> None:
    """Wait until the controller-manager has tainted the node (what kvha's detection waits for).

    Restarting earlier would let the scheduler put the new launcher pod on the dead node itself.
    """

    def tainted() -> bool:
        taints = plane.client.get(NODES.path(name=node))["spec"].get("taints", [])
        return any(t["key"] == "node.kubernetes.io/unreachable" and t["effect"] == "NoSchedule" for t in taints)

    wait_for(tainted, what=f"{node} to be tainted unreachable", timeout=60)


def _kvha_style_restart(plane: Testbed, namespace: str, vmi: Obj) -> None:
    """What the operator does for a fenced node: force-delete the launcher (that is the restart:
    a VMI without its pod is Failed at once, and the VM controller replaces it)."""
    _wait_unreachable(plane, vmi["status"]["nodeName"])
    launcher = _launcher(plane, namespace, vmi["metadata"]["name"])
    plane.client.delete(PODS.path(namespace, launcher["metadata"]["name"]), grace_seconds=0)


def test_baseline_without_ha_the_vm_stays_stuck(plane: Testbed, namespace: str, nodes) -> None:
    """Pinned KubeVirt gap: after its node dies, KubeVirt alone never restarts the VM."""
    kube = plane.client
    nodes(3, cpu=4, memory="8Gi")
    vmi = _start_vm(plane, namespace, "stuck")
    node, uid = vmi["status"]["nodeName"], vmi["metadata"]["uid"]
    pod_path = PODS.path(namespace, _launcher(plane, namespace, "stuck")["metadata"]["name"])
    plane.faults.power_off(node)

    wait_for(
        lambda: kube.get(pod_path)["metadata"].get("deletionTimestamp"),
        what="taint-based eviction to mark the launcher pod Terminating",
        timeout=60,
    )
    wait_for(
        lambda: kube.get(NODES.path(name=node))["metadata"]["labels"].get("kubevirt.io/schedulable") == "false",
        what="the node controller to mark the node unschedulable",
        timeout=plane.config.simulator.heartbeat_timeout + 30,
    )

    def still_stuck() -> bool:
        current, pod = plane.vmi(namespace, "stuck"), kube.get_or_none(pod_path)
        return (
            current is not None
            and current["metadata"]["uid"] == uid
            and current["status"]["phase"] == "Running"
            and pod is not None
            and pod["metadata"].get("deletionTimestamp") is not None
        )

    holds_for(still_stuck, what="the old VMI Running with a Terminating pod and no second VMI", duration=5)
    assert plane.ledger.live_instances(vm_key(namespace, "stuck")) == []
    plane.ledger.assert_no_split_brain(vm_key(namespace, "stuck"))


def test_partition_keeps_the_guest_running(plane: Testbed, namespace: str, nodes) -> None:
    nodes(3, cpu=4, memory="8Gi")
    vmi = _start_vm(plane, namespace, "cut-off")
    node, uid = vmi["status"]["nodeName"], vmi["metadata"]["uid"]
    plane.faults.partition(node)

    def ready() -> str:
        return next(
            c["status"] for c in plane.client.get(NODES.path(name=node))["status"]["conditions"] if c["type"] == "Ready"
        )

    wait_for(lambda: ready() == "Unknown", what=f"{node} Ready=Unknown", timeout=60)
    live = plane.ledger.live_instances(vm_key(namespace, "cut-off"))
    assert [(i.node, i.vmi_uid) for i in live] == [(node, uid)]
    assert plane.faults.state(node) is Power.PARTITIONED

    assert plane.faults.revive(node) == []  # nothing superseded it: the guest simply carries on
    wait_for(
        lambda: (plane.vm(namespace, "cut-off") or {}).get("status", {}).get("ready"),
        what="the VM to be ready again once its node is back",
        timeout=60,
    )
    assert [i.vmi_uid for i in plane.ledger.live_instances(vm_key(namespace, "cut-off"))] == [uid]


def test_revived_powered_off_node_comes_back_empty(plane: Testbed, namespace: str, nodes) -> None:
    nodes(1, cpu=4, memory="8Gi")
    vmi = _start_vm(plane, namespace, "rebooted")
    node, uid = vmi["status"]["nodeName"], vmi["metadata"]["uid"]
    assert [i.vmi_uid for i in plane.faults.power_off(node)] == [uid]
    assert plane.faults.revive(node) == []

    # The rebooted kubelet reports the launcher Failed, the VMI fails, Always starts a new one.
    new = plane.wait_vmi_phase(namespace, "rebooted", "Running", uid_not=uid, timeout=60)
    assert new["status"]["nodeName"] == node
    assert [i.vmi_uid for i in plane.ledger.live_instances(vm_key(namespace, "rebooted"))] == [new["metadata"]["uid"]]
    plane.ledger.assert_no_split_brain(vm_key(namespace, "rebooted"))


def test_always_vm_restarts_elsewhere_after_kvha_style_restart(plane: Testbed, namespace: str, nodes) -> None:
    nodes(3, cpu=4, memory="8Gi")
    vmi = _start_vm(plane, namespace, "ha")
    node = vmi["status"]["nodeName"]
    plane.faults.power_off(node)
    _kvha_style_restart(plane, namespace, vmi)

    new = plane.wait_vmi_phase(namespace, "ha", "Running", uid_not=vmi["metadata"]["uid"], timeout=60)
    assert new["status"]["nodeName"] != node
    history = plane.ledger.history(vm_key(namespace, "ha"))
    assert [i.vmi_uid for i in history] == [vmi["metadata"]["uid"], new["metadata"]["uid"]]
    assert history[0].stop_reason == "node powered off"
    plane.ledger.assert_no_split_brain(vm_key(namespace, "ha"))


def test_restart_without_fencing_is_recorded_as_split_brain(plane: Testbed, namespace: str, nodes) -> None:
    nodes(3, cpu=4, memory="8Gi")
    vmi = _start_vm(plane, namespace, "twice")
    plane.faults.partition(vmi["status"]["nodeName"])
    _kvha_style_restart(plane, namespace, vmi)

    plane.wait_vmi_phase(namespace, "twice", "Running", uid_not=vmi["metadata"]["uid"], timeout=60)
    events = plane.ledger.split_brain_events(vm_key(namespace, "twice"))
    assert len(events) == 1
    assert vmi["metadata"]["uid"] in {i.vmi_uid for i in events[0].instances}
    with pytest.raises(AssertionError, match="split brain"):
        plane.ledger.assert_no_split_brain(vm_key(namespace, "twice"))
    killed = plane.faults.revive(vmi["status"]["nodeName"])  # reconnecting kills the superseded guest
    assert [i.vmi_uid for i in killed] == [vmi["metadata"]["uid"]]
    assert len(plane.ledger.live_instances(vm_key(namespace, "twice"))) == 1


def test_node_controller_fails_podless_vmi_on_dead_node(plane: Testbed, namespace: str, nodes) -> None:
    """Pod gone on a dead node: the VMI is Failed (at once, as real virt-controller does; the node
    controller's NodeUnresponsive would follow after the heartbeat timeout) and replaced."""
    nodes(3, cpu=4, memory="8Gi")
    vmi = _start_vm(plane, namespace, "orphan")
    plane.faults.power_off(vmi["status"]["nodeName"])
    # Before the taints, the scheduler would put the replacement on the dead node (still Ready).
    _wait_unreachable(plane, vmi["status"]["nodeName"])
    launcher = _launcher(plane, namespace, "orphan")
    plane.client.delete(PODS.path(namespace, launcher["metadata"]["name"]), grace_seconds=0)

    def failed_or_replaced() -> bool:
        current = plane.vmi(namespace, "orphan") or {}
        return (
            current.get("status", {}).get("reason") == "NodeUnresponsive"
            or current.get("metadata", {}).get("uid") != vmi["metadata"]["uid"]
        )

    wait_for(
        failed_or_replaced,
        what="the node controller to fail the VMI",
        timeout=plane.config.simulator.heartbeat_timeout + 30,
    )
    new = plane.wait_vmi_phase(namespace, "orphan", "Running", uid_not=vmi["metadata"]["uid"], timeout=60)
    assert new["status"]["nodeName"] != vmi["status"]["nodeName"]


def test_rerun_on_failure_restarts_after_failure_not_after_success(plane: Testbed, namespace: str, nodes) -> None:
    nodes(2, cpu=4, memory="8Gi")
    first = _start_vm(plane, namespace, "rerun", run_strategy="RerunOnFailure")
    plane.client.patch(VMIS.path(namespace, "rerun"), {"status": {"phase": "Failed"}})
    second = plane.wait_vmi_phase(namespace, "rerun", "Running", uid_not=first["metadata"]["uid"])
    dead = plane.ledger.instance(first["metadata"]["uid"])
    assert dead is not None
    assert (dead.stop_reason or "").startswith("VMI is Failed")

    plane.sim.guest_shutdown(namespace, "rerun")
    plane.wait_vmi_phase(namespace, "rerun", "Succeeded")
    plane.wait_vm_status(namespace, "rerun", "Stopped")
    holds_for(
        lambda: (plane.vmi(namespace, "rerun") or {}).get("metadata", {}).get("uid") == second["metadata"]["uid"],
        what="the Succeeded VMI to stay (no restart)",
        duration=3,
    )


def test_always_restarts_after_guest_shutdown(plane: Testbed, namespace: str, nodes) -> None:
    nodes(1, cpu=4, memory="8Gi")
    first = _start_vm(plane, namespace, "always")
    plane.sim.guest_shutdown(namespace, "always")
    plane.wait_vmi_phase(namespace, "always", "Running", uid_not=first["metadata"]["uid"])


def test_halted_and_manual_vms_do_not_start_by_themselves(plane: Testbed, namespace: str, nodes) -> None:
    kube = plane.client
    nodes(1, cpu=4, memory="8Gi")
    kube.create(VMS.path(namespace), vm_manifest("halted", namespace=namespace, run_strategy="Halted"))
    kube.create(VMS.path(namespace), vm_manifest("legacy-off", namespace=namespace, run_strategy=None, running=False))
    kube.create(VMS.path(namespace), vm_manifest("manual", namespace=namespace, run_strategy="Manual"))
    names = ("halted", "legacy-off", "manual")
    for name in names:
        plane.wait_vm_status(namespace, name, "Stopped")
    holds_for(
        lambda: all(plane.vmi(namespace, n) is None for n in names),
        what="no VMI for Halted, running:false and Manual VMs",
        duration=3,
    )

    # `virtctl start` goes through virt-api, which records a state change request on the VM.
    start = {"status": {"stateChangeRequests": [{"action": "Start"}]}}
    kube.patch(VMS.path(namespace, "manual", "status"), start)
    plane.wait_vm_status(namespace, "manual", "Running")


def _conditions(obj: Obj) -> dict[str, str]:
    return {c["type"]: c["status"] for c in obj.get("status", {}).get("conditions", [])}


def test_fence_agent_powers_off_and_reports_succeeded(plane: Testbed, namespace: str, nodes) -> None:
    kube = plane.client
    nodes(3, cpu=4, memory="8Gi")
    vmi = _start_vm(plane, namespace, "fenced")
    node = vmi["status"]["nodeName"]
    kube.create(
        FENCE_AGENTS_REMEDIATIONS.path(namespace),
        {
            "apiVersion": "fence-agents-remediation.medik8s.io/v1alpha1",
            "kind": "FenceAgentsRemediation",
            "metadata": {"name": node},
            "spec": {"agent": "fence_ipmilan", "remediationStrategy": "OutOfServiceTaint"},
        },
    )

    conditions = wait_for(
        lambda: (
            c
            if (c := _conditions(kube.get(FENCE_AGENTS_REMEDIATIONS.path(namespace, node)))).get("Succeeded") == "True"
            else None
        ),
        what="the fence agent to report Succeeded",
        timeout=30,
    )
    assert conditions["Processing"] == "False"
    assert conditions["FenceAgentActionSucceeded"] == "True"
    assert plane.faults.state(node) is Power.POWERED_OFF
    assert plane.ledger.live_instances(vm_key(namespace, "fenced")) == []
    taint = {"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}
    assert taint in kube.get(NODES.path(name=node))["spec"].get("taints", [])

    kube.delete(FENCE_AGENTS_REMEDIATIONS.path(namespace, node))
    wait_for(
        lambda: taint not in kube.get(NODES.path(name=node))["spec"].get("taints", []),
        what="the out-of-service taint to go with the remediation",
        timeout=30,
    )


def test_self_node_remediation_success_and_failure(plane: Testbed, namespace: str, nodes) -> None:
    kube = plane.client
    healthy, doomed = nodes(2, cpu=4, memory="8Gi")
    plane.fence_agent.fail(healthy)
    try:
        for node in (healthy, doomed):
            kube.create(
                SELF_NODE_REMEDIATIONS.path(namespace),
                {
                    "apiVersion": "self-node-remediation.medik8s.io/v1alpha1",
                    "kind": "SelfNodeRemediation",
                    "metadata": {"name": node},
                    "spec": {},
                },
            )

        def outcome(node: str) -> str | None:
            status = _conditions(kube.get(SELF_NODE_REMEDIATIONS.path(namespace, node))).get("Succeeded")
            return status if status in ("True", "False") else None

        assert wait_for(lambda: outcome(doomed), what="the doomed node's SNR to finish", timeout=30) == "True"
        assert wait_for(lambda: outcome(healthy), what="the other SNR to finish", timeout=30) == "False"
        assert plane.faults.state(doomed) is Power.POWERED_OFF
        assert plane.faults.state(healthy) is Power.UP
    finally:
        plane.fence_agent.fail(healthy, failing=False)
