"""The adapter's API calls against the real apiserver: the exact patch types and preconditions
matter (a merge patch cannot carry the uid test; a stale taint list would drop the controller-
manager's taints), and only a real server says whether they are right."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from kvha.constants import FENCE_CONFIRMED_ANNOTATION
from kvha.k8s.api import Kube, remove_node_annotation_if
from kvha_testbed.kube import NODES, PODS, SELF_NODE_REMEDIATIONS, VMS
from kvha_testbed.objects import vm_manifest
from kvha_testbed.testbed import Testbed

pytestmark = pytest.mark.integration


def test_force_deleting_the_launcher_pod_is_the_restart(
    plane: Testbed, namespace: str, nodes: Callable[..., list[str]]
) -> None:
    """On real KubeVirt the pod deletion alone restarts the VM: virt-controller fails the podless
    VMI at once and the VM controller creates a new one. kvha writes no VMI status (virt-api would
    revert it: tests/integration/testbed/test_testbed_real_kubevirt.py)."""
    assert plane.kubevirt is not None, "pinned against real virt-controller"
    nodes(1)
    plane.client.create(VMS.path(namespace), vm_manifest("guest", namespace=namespace))
    old = plane.wait_vmi_phase(namespace, "guest", "Running")
    uid = old["metadata"]["uid"]
    pods, _ = plane.client.list(PODS.path(namespace), label_selector=f"kubevirt.io/created-by={uid}")
    [pod] = [p["metadata"]["name"] for p in pods]
    kube = Kube(plane.kubernetes_client())

    assert asyncio.run(kube.force_delete_pod(namespace, pod)) is True
    new = plane.wait_vmi_phase(namespace, "guest", "Running", uid_not=uid, timeout=30)
    assert new["metadata"]["uid"] != uid
    assert asyncio.run(kube.force_delete_pod(namespace, pod)) is False, "already gone"


def test_out_of_service_taint_keeps_the_other_taints(plane: Testbed, nodes: Callable[..., list[str]]) -> None:
    [node] = nodes(1, taints=[{"key": "example.com/dedicated", "value": "db", "effect": "NoSchedule"}])
    kube = Kube(plane.kubernetes_client())

    def taints() -> list[tuple[str, str]]:
        spec = plane.client.get(NODES.path(name=node))["spec"]
        return sorted((t["key"], t["effect"]) for t in spec.get("taints", []))

    assert asyncio.run(kube.set_out_of_service_taint(node, present=True)) is True
    assert ("node.kubernetes.io/out-of-service", "NoSchedule") in taints()
    assert ("example.com/dedicated", "NoSchedule") in taints()
    assert asyncio.run(kube.set_out_of_service_taint(node, present=True)) is False  # idempotent
    assert asyncio.run(kube.set_out_of_service_taint(node, present=False)) is True
    assert taints() == [("example.com/dedicated", "NoSchedule")]


def test_the_fence_confirmation_is_removed_only_while_it_names_the_incident(
    plane: Testbed, nodes: Callable[..., list[str]]
) -> None:
    [node] = nodes(1)
    kube = Kube(plane.kubernetes_client())

    def annotations() -> dict[str, str]:
        return plane.client.get(NODES.path(name=node))["metadata"].get("annotations") or {}

    assert asyncio.run(remove_node_annotation_if(kube, node, FENCE_CONFIRMED_ANNOTATION, "incident-a")) is False
    plane.client.patch(NODES.path(name=node), {"metadata": {"annotations": {FENCE_CONFIRMED_ANNOTATION: "incident-b"}}})
    assert asyncio.run(remove_node_annotation_if(kube, node, FENCE_CONFIRMED_ANNOTATION, "incident-a")) is False
    assert annotations()[FENCE_CONFIRMED_ANNOTATION] == "incident-b"  # given since for another incident
    assert asyncio.run(remove_node_annotation_if(kube, node, FENCE_CONFIRMED_ANNOTATION, "incident-b")) is True
    assert FENCE_CONFIRMED_ANNOTATION not in annotations()


def test_a_remediation_of_the_same_name_is_neither_created_over_nor_deleted_by_an_old_uid(
    plane: Testbed, namespace: str
) -> None:
    kube = Kube(plane.kubernetes_client())
    api = "self-node-remediation.medik8s.io/v1alpha1"
    plural = asyncio.run(kube.plural(api_version=api, kind="SelfNodeRemediation"))  # from discovery
    assert plural == SELF_NODE_REMEDIATIONS.plural
    with pytest.raises(LookupError):
        asyncio.run(kube.plural(api_version=api, kind="NoSuchRemediation"))
    with pytest.raises(LookupError):
        asyncio.run(kube.plural(api_version="not-served.example.io/v1", kind="SelfNodeRemediation"))
    body = {"apiVersion": api, "kind": "SelfNodeRemediation", "metadata": {"name": "w1", "namespace": namespace}}
    assert asyncio.run(kube.create_object(api_version=api, plural=plural, body=body, namespace=namespace)) is True
    assert asyncio.run(kube.create_object(api_version=api, plural=plural, body=body, namespace=namespace)) is False
    path = SELF_NODE_REMEDIATIONS.path(namespace, "w1")
    uid = plane.client.get(path)["metadata"]["uid"]
    delete = {"api_version": api, "plural": plural, "name": "w1", "namespace": namespace}
    assert asyncio.run(kube.delete_object(**delete, uid="not-" + uid)) is False
    assert plane.client.get(path)["metadata"]["uid"] == uid
    assert asyncio.run(kube.delete_object(**delete, uid=uid)) is True
    assert plane.client.get_or_none(path) is None
    assert asyncio.run(kube.delete_object(**delete, uid=uid)) is False
