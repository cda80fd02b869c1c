"""The adapter's API calls against the real apiserver: the exact patch types and preconditions
matter (a merge patch cannot carry the uid test; a stale taint list would drop the controller-
manager's taints), and only a real server says whether they are right."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from kvha.k8s.api import Kube
from kvha_testbed.kube import NODES, PODS, VMS
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
