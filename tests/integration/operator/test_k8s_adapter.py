"""The adapter's API calls against the real apiserver: the exact patch types and preconditions
matter (a merge patch cannot carry the uid test; a stale taint list would drop the controller-
manager's taints), and only a real server says whether they are right."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from kvha.k8s.api import Kube
from kvha_testbed.kube import NODES, VMIS, VMS
from kvha_testbed.objects import vm_manifest
from kvha_testbed.testbed import Testbed

pytestmark = pytest.mark.integration


def test_mark_vmi_failed_only_touches_the_instance_it_names(
    plane: Testbed, namespace: str, nodes: Callable[..., list[str]]
) -> None:
    nodes(1)
    plane.client.create(VMS.path(namespace), vm_manifest("guest", namespace=namespace, run_strategy="Manual"))
    kube = Kube(plane.kubernetes_client())
    plane.client.create(
        VMIS.path(namespace),
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstance",
            "metadata": {"name": "lonely", "namespace": namespace},
            "spec": {"domain": {"devices": {}, "memory": {"guest": "1Gi"}}},
        },
    )
    vmi = plane.wait_vmi_phase(namespace, "lonely", "Running")
    uid = vmi["metadata"]["uid"]

    assert asyncio.run(kube.mark_vmi_failed(namespace, "lonely", "not-" + uid, "test")) is False
    assert (plane.vmi(namespace, "lonely") or {})["status"]["phase"] == "Running"

    assert asyncio.run(kube.mark_vmi_failed(namespace, "lonely", uid, "test")) is True
    after = plane.vmi(namespace, "lonely")
    assert after is not None
    assert after["status"]["phase"] == "Failed"
    assert after["status"]["reason"] == "NodeUnresponsive"


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
