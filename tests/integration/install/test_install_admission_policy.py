"""The chart's ValidatingAdmissionPolicy, judged by a real API server: kvha's ServiceAccount may
change on a Node only the out-of-service taint and kvha.io annotations, and delete only
virt-launcher pods; every other user keeps the rights RBAC gives them.

RBAC cannot express either restriction ("patch nodes" is all or nothing), so without the policy a
compromised or buggy operator could cordon, relabel or NoExecute-taint any node and delete any pod.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest
from install_cluster import Kubectl, Release
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kvha.constants import FENCE_CONFIRMED_ANNOTATION, OUT_OF_SERVICE_TAINT_KEY
from kvha.k8s.api import Kube, remove_node_annotation_if
from kvha_testbed.testbed import Testbed

pytestmark = pytest.mark.integration

POLICY_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


@pytest.fixture
def guarded(plane: Testbed, kubectl: Kubectl, release: Callable[..., Release], nodes: Callable[..., list[str]]) -> Kube:
    """kvha's adapter authenticated as the chart's ServiceAccount, with the chart's RBAC and policy
    in force (the API server serves a new policy after a moment; a probe node shows when)."""
    rel = release("kvha-vap")
    kinds = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", *POLICY_KINDS)
    kubectl("apply", "--server-side", "-f", "-", stdin=rel.only(*kinds))
    name = rel.find("ServiceAccount")["metadata"]["name"]
    kube = Kube(plane.kubernetes_client(kubeconfig=plane.serviceaccount_kubeconfig(rel.namespace, name, create=False)))
    [probe] = nodes(1)
    deadline = time.monotonic() + 30
    for attempt in itertools.count():
        try:  # harmless while the policy is not served yet: a label on a node of this test only
            kube.core.patch_node(probe, {"metadata": {"labels": {"kvha-test/probe": str(attempt)}}})
        except ApiException as exc:
            if exc.status in (403, 422):
                return kube
            raise
        assert time.monotonic() < deadline, "the admission policy was not in force after 30 s"
        time.sleep(0.5)
    raise AssertionError("unreachable")


def _refused(call: Callable[[], Any]) -> str:
    """The API server's refusal message (403 or 422 with the policy's message)."""
    with pytest.raises(ApiException) as refused:
        call()
    assert refused.value.status in (403, 422), refused.value.body
    return str(refused.value.body)


def _with_taint(core: Any, node: str, effect: str) -> Callable[[], Any]:
    def patch() -> Any:
        for _ in range(10):  # kwok and the node lifecycle controller update the node meanwhile
            current = core.read_node(node)
            taints = [t.to_dict() for t in current.spec.taints or []]
            taints.append({"key": OUT_OF_SERVICE_TAINT_KEY, "value": "nodeshutdown", "effect": effect})
            version = current.metadata.resource_version
            try:
                return core.patch_node(node, {"metadata": {"resourceVersion": version}, "spec": {"taints": taints}})
            except ApiException as exc:
                if exc.status != 409:
                    raise
        raise AssertionError(f"node {node} kept changing")

    return patch


def test_out_of_service_taint_with_no_schedule_and_kvha_annotations_are_allowed(
    guarded: Kube, nodes: Callable[..., list[str]], core_api: Any
) -> None:
    [node] = nodes(1)
    core_api.patch_node(node, {"metadata": {"annotations": {FENCE_CONFIRMED_ANNOTATION: "node-failover-1"}}})

    assert asyncio.run(guarded.set_out_of_service_taint(node, present=True))
    taints = core_api.read_node(node).spec.taints or []
    assert [(t.key, t.effect) for t in taints] == [(OUT_OF_SERVICE_TAINT_KEY, "NoSchedule")]
    assert asyncio.run(remove_node_annotation_if(guarded, node, FENCE_CONFIRMED_ANNOTATION, "node-failover-1"))
    assert FENCE_CONFIRMED_ANNOTATION not in (core_api.read_node(node).metadata.annotations or {})
    assert asyncio.run(guarded.set_out_of_service_taint(node, present=False))
    assert not core_api.read_node(node).spec.taints


def test_everything_else_on_a_node_is_refused(guarded: Kube, nodes: Callable[..., list[str]], core_api: Any) -> None:
    [node] = nodes(1, taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    core = guarded.core
    assert "NoSchedule effect only" in _refused(_with_taint(core, node, "NoExecute"))
    assert "never changes a node's labels" in _refused(
        lambda: core.patch_node(node, {"metadata": {"labels": {"kubevirt.io/schedulable": "false"}}})
    )
    assert "only annotations of the kvha.io domain" in _refused(
        lambda: core.patch_node(node, {"metadata": {"annotations": {"kubevirt.io/heartbeat": "2020-01-01T00:00:00Z"}}})
    )
    assert "never cordons" in _refused(lambda: core.patch_node(node, {"spec": {"unschedulable": True}}))
    assert "only the node.kubernetes.io/out-of-service taint" in _refused(
        lambda: core.patch_node(node, {"spec": {"taints": []}})
    )
    # The admin is not kvha: the same change goes through for any other user.
    core_api.patch_node(node, {"metadata": {"labels": {"kubevirt.io/schedulable": "false"}}})


def test_only_launcher_pods_may_be_deleted(guarded: Kube, namespace: str, core_api: Any) -> None:
    def pod(name: str, labels: dict[str, str], ns: str) -> client.V1Pod:
        body = {
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "example.invalid/c"}], "nodeName": "nowhere"},
        }
        return core_api.create_namespaced_pod(ns, body)

    system = pod(f"not-a-launcher-{namespace}"[:63], {"app": "dns"}, "kube-system")
    try:
        message = _refused(lambda: guarded.core.delete_namespaced_pod(system.metadata.name, "kube-system"))
        assert "deletes only KubeVirt virt-launcher pods" in message
        assert core_api.read_namespaced_pod(system.metadata.name, "kube-system").metadata.uid == system.metadata.uid
    finally:
        core_api.delete_namespaced_pod(system.metadata.name, "kube-system", grace_period_seconds=0)

    launcher = pod("virt-launcher-guarded-abcde", {"kubevirt.io": "virt-launcher"}, namespace)
    assert asyncio.run(guarded.force_delete_pod(namespace, launcher.metadata.name))
