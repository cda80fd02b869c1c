"""Fencing evidence must belong to the incident (issue 9), on the real control plane.

A host that was fenced once may be rebooted, run VMs again, and later be only cut off from the
network with those VMs still running. What the earlier incident, an administrator or another tool
left on it - kvha's own out-of-service taint, a kvha.io/fence-confirmed annotation, a Succeeded
remediation - must not fence the new incident, or every VM on the host runs twice. The split-brain
ledger of the simulated KubeVirt says whether any VM did.
"""

from __future__ import annotations

from typing import Any

import pytest

from kvha_testbed.kube import NODES, PODS, SELF_NODE_REMEDIATIONS
from kvha_testbed.scenario import FENCE_CONFIRMED, Scenario
from kvha_testbed.waiting import holds_for, wait_for

pytestmark = pytest.mark.integration
Obj = dict[str, Any]
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"
SNR_API = "self-node-remediation.medik8s.io/v1alpha1"


def _incident(scene: Scenario, *, phase: str, other_than: str | None = None, timeout: float = 90) -> Obj:
    """The scenario's NodeFailover in `phase`, other than `other_than` (an earlier incident)."""

    def probe() -> Obj | None:
        return next(
            (
                f
                for f in scene.failovers()
                if f["metadata"]["name"] != other_than and (f.get("status") or {}).get("phase") == phase
            ),
            None,
        )

    return wait_for(
        probe,
        what=f"a NodeFailover in phase {phase} (other than {other_than})",
        timeout=timeout,
        show=lambda: [(f["metadata"]["name"], f.get("status")) for f in scene.failovers()],
    )


def _node_agent(scene: Scenario, node: str) -> None:
    """A DaemonSet-like pod bound to the node that tolerates every taint: it stays on the node
    through every failure, so the out-of-service taint kvha applied stays too (Kubernetes' rule:
    the taint is removed only once no pod is bound to the node)."""
    scene.kube.create(
        PODS.path(scene.namespace),
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"node-agent-{node[-6:]}", "namespace": scene.namespace},
            "spec": {
                "nodeName": node,
                "tolerations": [{"operator": "Exists"}],
                "containers": [{"name": "agent", "image": "registry.example/node-agent:1"}],
            },
        },
    )


def _cordon(scene: Scenario, nodes: list[str], *, on: bool) -> None:
    for node in nodes:
        scene.kube.patch(NODES.path(name=node), {"spec": {"unschedulable": on}})


def test_a_taint_left_by_an_earlier_incident_does_not_fence_a_partition(scenario: Scenario) -> None:
    """Given a host that kvha fenced once, revived with a node agent pod that keeps kvha's
    out-of-service taint on it, and that runs a VM again; when it is only partitioned; then nothing
    restarts until the new incident is confirmed, and no VM ever runs twice."""
    scene = scenario
    [host_a] = scene.nodes(1, memory="16Gi")
    _node_agent(scene, host_a)
    scene.vm("db-1", memory="2Gi")
    scene.bed.wait_vm_status(scene.namespace, "db-1", "Running")
    survivors = scene.nodes(2, memory="16Gi")
    scene.policy(fencing={"strategy": "OutOfServiceTaint", "confirmation": "Manual", "timeout": "10m"})
    scene.operator().start()

    # The earlier incident: power-off, confirmed, fenced, db-1 restored elsewhere.
    scene.bed.faults.power_off(host_a)
    first = scene.failover(phase="Fencing")["metadata"]["name"]
    scene.confirm_fenced(host_a)
    scene.failover(phase="Completed", timeout=120)
    scene.bed.faults.revive(host_a)
    wait_for(
        lambda: "waiting for the pods still bound" in (scene.failover()["status"]["fencing"].get("message") or ""),
        what="the first incident to wait for the node agent pod before removing its taint",
        timeout=60,
        show=lambda: scene.failover()["status"],
    )
    assert scene.has_taint(host_a, OUT_OF_SERVICE)
    assert FENCE_CONFIRMED not in (scene.kube.get(NODES.path(name=host_a))["metadata"].get("annotations") or {})

    # The host runs a VM again (one that tolerates the taint), then is cut off with it running.
    _cordon(scene, survivors, on=True)
    scene.vm("late-1", memory="1Gi", tolerations=[{"key": OUT_OF_SERVICE, "operator": "Exists"}])
    vmi = scene.bed.wait_vmi_phase(scene.namespace, "late-1", "Running")
    assert vmi["status"]["nodeName"] == host_a
    _cordon(scene, survivors, on=False)
    late_uid = vmi["metadata"]["uid"]
    still_running = scene.bed.faults.partition(host_a)
    assert [i.vm for i in still_running] == [f"{scene.namespace}/late-1"]

    second = _incident(scene, phase="Fencing", other_than=first)
    assert "its out-of-service taint was not applied for this incident" in second["status"]["message"]
    holds_for(
        lambda: (
            scene.vmi_uid("late-1") == late_uid
            and all(
                (f.get("status") or {}).get("phase") == "Fencing"
                for f in scene.failovers()
                if f["metadata"]["name"] != first
            )
        ),
        what="no restart of late-1 and the new incident unfenced without a new confirmation",
        duration=10,
    )
    scene.bed.ledger.assert_no_split_brain()

    # With a confirmation for this incident, after a real power-off, it moves.
    scene.bed.faults.power_off(host_a)
    assert scene.confirm_fenced(host_a) == second["metadata"]["name"]
    done = _incident(scene, phase="Completed", other_than=first, timeout=120)
    assert done["status"]["restored"] == 1
    assert scene.vmi_uid("late-1") != late_uid
    scene.bed.ledger.assert_no_split_brain()
    assert len(scene.bed.ledger.live_instances(f"{scene.namespace}/late-1")) == 1


@pytest.mark.parametrize("stale_value", ["false", "true"])
def test_a_stale_fence_confirmed_annotation_does_not_fence_a_partition(scenario: Scenario, stale_value: str) -> None:
    """Given a host annotated kvha.io/fence-confirmed before the incident (`false`, or the `true`
    an administrator once wrote); when it is only partitioned; then nothing is fenced or restarted,
    and the incident tells the admin the exact command that would confirm it."""
    scene = scenario
    host_a, old_uids = scene.host_running(["db-1", "db-2"], memory="16Gi", vm_memory="2Gi")
    scene.annotate_node(host_a, FENCE_CONFIRMED, stale_value)
    scene.policy(fencing={"strategy": "OutOfServiceTaint", "confirmation": "Manual", "timeout": "10m"})
    scene.operator().start()

    assert len(scene.bed.faults.partition(host_a)) == 2
    failover = scene.failover(phase="Fencing")
    name = failover["metadata"]["name"]
    message = failover["status"]["message"]
    assert f"kubectl annotate node {host_a} {FENCE_CONFIRMED}={name} --overwrite" in message, message
    assert f"its annotation {FENCE_CONFIRMED}={stale_value} does not name this incident" in message, message
    holds_for(
        lambda: (
            all(scene.vmi_uid(n) == u for n, u in old_uids.items())
            and not scene.has_taint(host_a, OUT_OF_SERVICE)
            and (scene.failover().get("status") or {}).get("phase") == "Fencing"
        ),
        what="no taint and no restart on a stale confirmation",
        duration=10,
    )
    scene.bed.ledger.assert_no_split_brain()

    scene.bed.faults.power_off(host_a)
    scene.confirm_fenced(host_a)
    assert scene.failover(phase="Completed", timeout=90)["status"]["restored"] == 2
    scene.bed.ledger.assert_no_split_brain()


def test_a_stale_succeeded_remediation_does_not_fence_a_partition(scenario: Scenario) -> None:
    """Given a Succeeded SelfNodeRemediation named after the host, created before the incident and
    not by kvha (say, by node-healthcheck-operator after an earlier reboot); when the host is only
    partitioned; then its verdict fences nothing and kvha leaves it alone; once it is removed, kvha
    creates its own, which fences the host, and only then do the VMs move."""
    scene = scenario
    [host_a] = scene.nodes(1, memory="16Gi")
    template = {
        "apiVersion": SNR_API,
        "kind": "SelfNodeRemediationTemplate",
        "name": "automatic",
        "namespace": scene.namespace,
    }
    scene.kube.create(
        f"/apis/{SNR_API}/namespaces/{scene.namespace}/selfnoderemediationtemplates",
        {
            "apiVersion": SNR_API,
            "kind": "SelfNodeRemediationTemplate",
            "metadata": {"name": "automatic", "namespace": scene.namespace},
            "spec": {"template": {"spec": {}}},
        },
    )
    # The earlier remediation, by someone else: the fence agent reboots the host and reports success.
    scene.kube.create(
        SELF_NODE_REMEDIATIONS.path(scene.namespace),
        {
            "apiVersion": SNR_API,
            "kind": "SelfNodeRemediation",
            "metadata": {"name": host_a, "namespace": scene.namespace},
            "spec": {},
        },
    )
    stale_path = SELF_NODE_REMEDIATIONS.path(scene.namespace, host_a)

    def succeeded() -> bool:
        conditions = (scene.kube.get(stale_path).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Succeeded" and c["status"] == "True" for c in conditions)

    wait_for(succeeded, what="the earlier remediation to succeed", timeout=30)
    stale_uid = scene.kube.get(stale_path)["metadata"]["uid"]
    scene.bed.faults.revive(host_a)
    for name in ("svc-1", "svc-2"):
        scene.vm(name, memory="2Gi")
        scene.bed.wait_vm_status(scene.namespace, name, "Running", timeout=90)
    scene.nodes(2, memory="16Gi")
    old_uids = {name: scene.vmi_uid(name) for name in ("svc-1", "svc-2")}
    fenced_before = len(scene.bed.fence_agent.fenced_nodes())
    scene.policy(fencing={"strategy": "Remediation", "remediationTemplate": template, "timeout": "10m"})
    scene.operator().start()

    assert len(scene.bed.faults.partition(host_a)) == 2
    failover = scene.failover(phase="Fencing")
    assert "was not created by kvha for this incident" in failover["status"]["message"], failover["status"]
    holds_for(
        lambda: (
            all(scene.vmi_uid(n) == u for n, u in old_uids.items())
            and scene.kube.get(stale_path)["metadata"]["uid"] == stale_uid  # not deleted, not replaced
            and (scene.failover().get("status") or {}).get("phase") == "Fencing"
        ),
        what="no restart and the foreign remediation left alone",
        duration=10,
    )
    assert len(scene.bed.fence_agent.fenced_nodes()) == fenced_before
    scene.bed.ledger.assert_no_split_brain()

    scene.kube.delete(stale_path)  # the administrator removes the leftover
    done = scene.failover(phase="Completed", timeout=120)
    assert done["status"]["restored"] == 2
    ours = scene.kube.get(stale_path)
    assert ours["metadata"]["uid"] != stale_uid
    assert [(o["kind"], o["uid"]) for o in ours["metadata"]["ownerReferences"]] == [
        ("NodeFailover", done["metadata"]["uid"])
    ]
    scene.bed.ledger.assert_no_split_brain()
    for name in old_uids:
        assert len(scene.bed.ledger.live_instances(f"{scene.namespace}/{name}")) == 1
