"""Every incident cleans up, and tenants cannot hurt each other (issue 10), on the real control plane.

A revived host's DaemonSet pods run again at once and must not keep kvha's taint on it forever; a
NodeFailover deleted by hand undoes what it put on its node; the documented uninstall leaves
nothing behind; long node names work; and a pod that only claims to be another tenant's launcher
is never deleted.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kvha_testbed.build import resolve_assets
from kvha_testbed.kube import NODES, PODS
from kvha_testbed.scenario import FENCE_CONFIRMED, NODEFAILOVERS, Scenario
from kvha_testbed.sim.context import Power
from kvha_testbed.waiting import holds_for, wait_for

pytestmark = pytest.mark.integration
Obj = dict[str, Any]
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"
INSTALL_DOC = Path(__file__).resolve().parents[3] / "docs" / "install.md"


def _annotations(scene: Scenario, node: str) -> dict[str, str]:
    return scene.kube.get(NODES.path(name=node))["metadata"].get("annotations") or {}


def _fenced_and_restored(scene: Scenario, *, vms: list[str]) -> tuple[str, dict[str, str | None]]:
    """A host whose VMs were restored elsewhere after a confirmed power-off; it stays off."""
    host, old_uids = scene.host_running(vms, memory="16Gi", vm_memory="1Gi")
    scene.policy(fencing={"strategy": "OutOfServiceTaint", "confirmation": "Manual"})
    scene.operator().start()
    scene.bed.faults.power_off(host)
    scene.failover(phase="Fencing")
    scene.confirm_fenced(host)
    done = scene.failover(phase="Completed", timeout=120)
    assert done["status"]["restored"] == len(vms)
    assert scene.has_taint(host, OUT_OF_SERVICE)
    return host, old_uids


def test_a_revived_host_running_a_daemonset_pod_loses_the_taint_and_takes_vms_again(scenario: Scenario) -> None:
    """Scenario 5: virt-handler, CNI and kube-proxy are DaemonSet pods; they run again on the host
    the moment it is back and never leave, so they must not hold kvha's out-of-service taint."""
    scene = scenario
    [host_a] = scene.nodes(1, memory="16Gi")
    scene.kube.create(
        f"/apis/apps/v1/namespaces/{scene.namespace}/daemonsets",
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "node-agent", "namespace": scene.namespace},
            "spec": {
                "selector": {"matchLabels": {"app": "node-agent"}},
                "template": {
                    "metadata": {"labels": {"app": "node-agent"}},
                    "spec": {
                        "nodeSelector": {"kubernetes.io/hostname": host_a},
                        "tolerations": [{"operator": "Exists"}],
                        "containers": [{"name": "agent", "image": "registry.example/node-agent:1"}],
                    },
                },
            },
        },
    )

    def agent() -> Obj | None:
        items, _ = scene.kube.list(PODS.path(scene.namespace), label_selector="app=node-agent")
        running = [p for p in items if (p.get("status") or {}).get("phase") == "Running"]
        return running[0] if running else None

    agent_pod = wait_for(agent, what="the DaemonSet's pod to run on the host", timeout=60)
    assert agent_pod["spec"]["nodeName"] == host_a
    scene.vm("svc-1", memory="1Gi")
    scene.bed.wait_vm_status(scene.namespace, "svc-1", "Running")
    scene.nodes(2, memory="16Gi")
    scene.policy(fencing={"strategy": "OutOfServiceTaint", "confirmation": "Manual"})
    scene.operator().start()

    scene.bed.faults.power_off(host_a)
    scene.failover(phase="Fencing")
    scene.confirm_fenced(host_a)
    scene.failover(phase="Completed", timeout=120)
    assert scene.has_taint(host_a, OUT_OF_SERVICE)
    scene.bed.faults.revive(host_a)

    def finished_incident() -> Obj | None:
        failover = scene.failover()
        return failover if (failover.get("status") or {}).get("finished") else None

    finished = wait_for(
        finished_incident,
        what="the incident to remove its taint although the DaemonSet pod stays on the host",
        timeout=150,
        show=scene.diagnose,
    )
    assert finished["status"]["fencing"]["taintRemoved"] is True
    assert not scene.has_taint(host_a, OUT_OF_SERVICE)
    assert FENCE_CONFIRMED not in _annotations(scene, host_a)
    assert (agent() or {}).get("metadata", {}).get("uid") == agent_pod["metadata"]["uid"], "kvha left it alone"
    assert scene.policy_status()["conditions"], "the policy is still reconciled"

    # The host takes VMs again.
    scene.vm("new-1", memory="1Gi", node_selector={"kubernetes.io/hostname": host_a})
    vmi = scene.bed.wait_vmi_phase(scene.namespace, "new-1", "Running")
    assert vmi["status"]["nodeName"] == host_a


def test_deleting_a_nodefailover_by_hand_undoes_its_fencing_and_restarts_nothing(scenario: Scenario) -> None:
    """The host stays off. Deleting its incident removes the taint and the confirmation kvha used,
    the finalizer goes, and the restored VMs keep running where they are; the policy then opens a
    new incident for the still-dead host, which asks for a new confirmation."""
    scene = scenario
    host_a, _ = _fenced_and_restored(scene, vms=["db-1", "db-2"])
    incident, deleted_uid = scene.failover()["metadata"]["name"], scene.failover()["metadata"]["uid"]
    restored = {name: scene.vmi_uid(name) for name in ("db-1", "db-2")}
    assert _annotations(scene, host_a)[FENCE_CONFIRMED] == incident

    scene.kube.delete(f"{NODEFAILOVERS}/{incident}")
    wait_for(
        lambda: not scene.has_taint(host_a, OUT_OF_SERVICE) and FENCE_CONFIRMED not in _annotations(scene, host_a),
        what="the deleted incident to remove its taint and confirmation",
        timeout=60,
        show=scene.diagnose,
    )
    wait_for(
        lambda: all(f["metadata"]["uid"] != deleted_uid for f in scene.failovers()),
        what="the finalizer to be released once nothing of the incident is left",
        timeout=60,
        show=scene.diagnose,
    )
    reopened = wait_for(
        lambda: next((f for f in scene.failovers() if (f.get("status") or {}).get("phase") == "Fencing"), None),
        what="a new incident for the host that is still dead",
        timeout=90,
        show=scene.diagnose,
    )
    assert "kvha.io/fence-confirmed" in reopened["status"]["message"]
    holds_for(
        lambda: all(scene.vmi_uid(n) == u for n, u in restored.items()) and not scene.has_taint(host_a, OUT_OF_SERVICE),
        what="no restart and no taint without a new confirmation",
        duration=8,
    )


def _uninstall_commands() -> list[str]:
    """Steps 1 to 3 of docs/install.md's uninstall, exactly as written there."""
    text = INSTALL_DOC.read_text()
    section = text[text.index("## Uninstall") :]
    block = section[section.index("```sh\n") + len("```sh\n") :]
    block = block[: block.index("# 4.")]
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_documented_uninstall_leaves_nothing_behind(scenario: Scenario) -> None:
    """A host fenced and still off, its incident completed but holding the taint: the documented
    steps end it while kvha runs, and then nothing of kvha's is left for a removed operator."""
    scene = scenario
    host_a, _ = _fenced_and_restored(scene, vms=["db-1"])
    kubectl = resolve_assets().kubectl
    env = {
        **os.environ,
        "PATH": f"{Path(kubectl).parent}{os.pathsep}{os.environ['PATH']}",
        "KUBECONFIG": str(scene.bed.kubeconfig),
    }
    commands = _uninstall_commands()
    assert len(commands) == 6, commands
    for command in commands[:2]:
        subprocess.run(["bash", "-o", "pipefail", "-c", command], env=env, check=True, timeout=330)
    for command in commands[2:]:
        out = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert out.stdout.strip() == "", f"{command}\nprinted:\n{out.stdout}"
    assert not scene.has_taint(host_a, OUT_OF_SERVICE)
    assert scene.kube.get_or_none(f"/apis/kvha.io/v1alpha1/hapolicies/{scene.policy_name}") is None
    assert scene.failovers() == []


def test_a_long_node_name_and_a_second_dead_node_both_get_incidents(scenario: Scenario) -> None:
    """Scenario 3: a 70-character node name does not fit a label value; hashed, it still gets its
    NodeFailover, and so does the other dead node (one node's incident never stops another's)."""
    scene = scenario
    long_name = re.sub(r"[^a-z0-9-]", "-", f"long-{scene.label}")[:50].rstrip("-")
    long_name = (long_name + "-" + "x" * 70)[:70]
    assert len(long_name) == 70
    # A label value cannot hold the name either: the host's own hostname label is short, as a
    # kubelet's is when the node name is a long FQDN.
    labels = {"kvha-test": scene.label, "kubernetes.io/hostname": long_name[:40].rstrip("-")}
    scene.bed.add_node(long_name, memory="16Gi", labels=labels)
    try:
        [short] = scene.nodes(1, memory="16Gi")
        scene.nodes(2, memory="16Gi")
        scene.policy(stormGuard={"maxUnhealthyNodes": 2})
        scene.operator().start()
        scene.bed.faults.power_off(long_name)
        scene.bed.faults.power_off(short)

        def both() -> list[Obj] | None:
            found = scene.failovers()
            return found if {f["spec"]["nodeName"] for f in found} == {long_name, short} else None

        found = wait_for(
            both,
            what="a NodeFailover for each dead node",
            timeout=90,
            show=scene.diagnose,
        )
        by_node = {f["spec"]["nodeName"]: f for f in found}
        assert len(by_node[long_name]["metadata"]["labels"]["kvha.io/node"]) <= 63
    finally:
        scene.kube.delete(NODES.path(name=long_name))
        scene.bed.sim.power.set(long_name, Power.UP)


def test_a_pod_claiming_another_tenant_s_vmi_is_never_deleted(scenario: Scenario) -> None:
    """Scenario 4: a tenant labels a pod of theirs with the victim VMI's uid, naming it like a pod in
    the victim's namespace; a migration-target-like pod labelled the same runs on a healthy node.
    kvha restarts the VM by deleting its own launcher, and neither of those pods."""
    scene = scenario
    [host_a] = scene.nodes(1, memory="16Gi")
    scene.vm("victim-db", memory="1Gi")
    scene.bed.wait_vm_status(scene.namespace, "victim-db", "Running")
    [healthy, _] = scene.nodes(2, memory="16Gi")
    victim_uid = scene.vmi_uid("victim-db")
    assert victim_uid is not None
    attacker = f"{scene.namespace[:50]}-evil"
    scene.kube.create_or_get("/api/v1/namespaces", {"metadata": {"name": attacker}})

    def pod(namespace: str, name: str, node: str, labels: dict[str, str]) -> str:
        created = scene.kube.create(
            PODS.path(namespace),
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "spec": {
                    "nodeName": node,
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [{"name": "app", "image": "registry.example/app:1"}],
                },
            },
        )
        return str(created["metadata"]["uid"])

    launcher_labels = {"kubevirt.io": "virt-launcher", "kubevirt.io/created-by": victim_uid}
    try:
        keep = {
            # The victim's own pod; the attacker's pod of the same name claims the victim's VMI.
            (scene.namespace, "victim-app"): pod(scene.namespace, "victim-app", healthy, {"app": "victim"}),
            (attacker, "victim-app"): pod(attacker, "victim-app", host_a, launcher_labels),
            # Labelled like the VMI's migration target, on a healthy node.
            (scene.namespace, "virt-launcher-victim-db-target"): pod(
                scene.namespace, "virt-launcher-victim-db-target", healthy, launcher_labels
            ),
        }
        scene.policy(fencing={"strategy": "OutOfServiceTaint", "confirmation": "Manual"})
        scene.operator().start()
        scene.bed.faults.power_off(host_a)
        scene.failover(phase="Fencing")
        scene.confirm_fenced(host_a)
        done = scene.failover(phase="Completed", timeout=120)
        assert done["status"]["restored"] == 1
        assert scene.vmi_uid("victim-db") != victim_uid
        for (namespace, name), uid in keep.items():
            found = scene.kube.get_or_none(f"{PODS.path(namespace)}/{name}")
            assert found is not None, f"kvha deleted {namespace}/{name}"
            assert found["metadata"]["uid"] == uid
            assert found["metadata"].get("deletionTimestamp") is None, f"{namespace}/{name} is being deleted"
    finally:
        scene.kube.delete(f"/api/v1/namespaces/{attacker}")
