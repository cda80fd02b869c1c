"""The testbed's real control plane: scheduling, node failure, RBAC and schema validation are real."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest

from kvha_testbed.kube import NODES, PODS, VMS, KubeClient, KubeError
from kvha_testbed.kubevirt_sim import launcher_requests
from kvha_testbed.objects import vm_manifest
from kvha_testbed.testbed import Testbed
from kvha_testbed.waiting import wait_for

pytestmark = pytest.mark.integration

UNREACHABLE = "node.kubernetes.io/unreachable"


def _ready(node: dict[str, Any]) -> str:
    return next((c["status"] for c in node["status"].get("conditions") or [] if c["type"] == "Ready"), "")


def _taints(kube: KubeClient, node: str) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in kube.get(NODES.path(name=node))["spec"].get("taints", [])}


def test_scheduler_places_pod_and_vm_by_requests(plane: Testbed, namespace: str, nodes) -> None:
    kube = plane.client
    small, big = nodes(1, cpu=2, memory="4Gi")[0], nodes(1, cpu=8, memory="32Gi")[0]
    kube.create(
        PODS.path(namespace),
        {
            "metadata": {"name": "needs-3-cpus"},
            "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "3"}}}]},
        },
    )
    kube.create(VMS.path(namespace), vm_manifest("needs-8gi", namespace=namespace, cpu=1, memory="8Gi"))

    def running_pod() -> dict[str, Any] | None:
        pod = kube.get(PODS.path(namespace, "needs-3-cpus"))
        return pod if pod["status"].get("phase") == "Running" else None

    pod = wait_for(running_pod, what="the plain pod to run")
    assert pod["spec"]["nodeName"] == big
    assert pod["status"]["podIP"]
    plane.wait_vm_status(namespace, "needs-8gi", "Running")
    vmi = plane.vmi(namespace, "needs-8gi")
    assert vmi is not None
    assert vmi["status"]["nodeName"] == big != small
    launcher = plane.sim.launcher_pods(namespace, "needs-8gi")[0]
    labels = launcher["metadata"]["labels"]
    assert launcher["metadata"]["name"].startswith("virt-launcher-needs-8gi-")
    assert labels["kubevirt.io"] == "virt-launcher"
    assert labels["kubevirt.io/created-by"] == vmi["metadata"]["uid"]
    assert launcher["spec"]["nodeSelector"]["kubevirt.io/schedulable"] == "true"
    # launcher_requests models CPU, memory and the kvm device; real virt-controller also asks for
    # tun, vhost-net and 50M of ephemeral storage.
    modelled = launcher_requests(vmi["spec"])["requests"]
    requests = launcher["spec"]["containers"][0]["resources"]["requests"]
    assert {key: requests.get(key) for key in modelled} == modelled


def test_vm_that_fits_nowhere_is_unschedulable(plane: Testbed, namespace: str, nodes) -> None:
    nodes(2, cpu=4, memory="8Gi")
    plane.client.create(VMS.path(namespace), vm_manifest("too-big", namespace=namespace, memory="64Gi"))

    vm = plane.wait_vm_status(namespace, "too-big", "ErrorUnschedulable")
    vmi = plane.vmi(namespace, "too-big")
    assert vmi is not None
    assert vmi["status"]["phase"] == "Scheduling"
    scheduled = next(c for c in vm["status"]["conditions"] if c["type"] == "PodScheduled")
    assert "Insufficient memory" in scheduled["message"]
    assert not vm["status"].get("ready")  # real KubeVirt omits false


def test_power_off_makes_node_unknown_and_tainted(plane: Testbed, nodes) -> None:
    kube = plane.client
    victim, *_ = nodes(3, cpu=4, memory="8Gi")  # keep the zone out of the controller's disruption mode
    plane.faults.power_off(victim)

    wait_for(
        lambda: _ready(kube.get(NODES.path(name=victim))) == "Unknown",
        what=f"{victim} to become Ready=Unknown",
        timeout=60,
    )
    wait_for(
        lambda: _taints(kube, victim) >= {(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")},
        what="unreachable taints from the controller-manager",
        timeout=30,
    )
    assert "kwok.x-k8s.io/managed" not in kube.get(NODES.path(name=victim))["metadata"]["labels"]

    plane.faults.revive(victim)
    wait_for(lambda: _ready(kube.get(NODES.path(name=victim))) == "True", what=f"{victim} Ready again", timeout=60)
    wait_for(lambda: not _taints(kube, victim), what="the taints to be lifted", timeout=30)


def test_cert_user_without_rights_is_forbidden(plane: Testbed, namespace: str) -> None:
    nobody = plane.kubernetes_client(plane.mint_kubeconfig("nobody", ["testers"]))
    with pytest.raises(kubernetes.client.ApiException) as denied:
        kubernetes.client.CoreV1Api(nobody).list_namespaced_pod(namespace)
    assert denied.value.status == 403
    assert 'User "nobody" cannot list resource "pods"' in json.loads(denied.value.body)["message"]


def test_serviceaccount_gets_exactly_what_is_bound(plane: Testbed, namespace: str) -> None:
    config = plane.serviceaccount_kubeconfig(namespace, "operator")
    api = kubernetes.client.CoreV1Api(plane.kubernetes_client(config))
    with pytest.raises(kubernetes.client.ApiException) as denied:
        api.list_namespaced_pod(namespace)
    assert denied.value.status == 403

    rbac = "/apis/rbac.authorization.k8s.io/v1"
    plane.client.create(
        f"{rbac}/namespaces/{namespace}/roles",
        {"metadata": {"name": "read-pods"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]},
    )
    plane.client.create(
        f"{rbac}/namespaces/{namespace}/rolebindings",
        {
            "metadata": {"name": "read-pods"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-pods"},
            "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": namespace}],
        },
    )
    pods = wait_for(lambda: api.list_namespaced_pod(namespace), what="the role binding to take effect")
    assert pods.items == []


def _rejection(kube: KubeClient, namespace: str, manifest: dict[str, Any]) -> KubeError:
    with pytest.raises(KubeError) as rejected:
        kube.create(VMS.path(namespace), manifest)
    assert rejected.value.status == 422
    return rejected.value


def test_invalid_vms_are_rejected_by_the_apiserver(plane: Testbed, namespace: str) -> None:
    kube = plane.client
    sometimes = vm_manifest("sometimes", namespace=namespace, run_strategy="Sometimes")
    # virt-api's rule, installed as a ValidatingAdmissionPolicy with virt-api's message.
    assert "Invalid RunStrategy (Sometimes)" in _rejection(kube, namespace, sometimes).message

    both = vm_manifest("both", namespace=namespace, run_strategy="Always", running=True)
    assert "Running and RunStrategy are mutually exclusive" in _rejection(kube, namespace, both).message

    wrong_type = vm_manifest("wrong-type", namespace=namespace)
    wrong_type["spec"]["template"]["spec"]["domain"]["cpu"]["cores"] = "two"
    message = _rejection(kube, namespace, wrong_type).message  # KubeVirt's own OpenAPI schema
    assert "spec.template.spec.domain.cpu.cores" in message
    assert "must be of type integer" in message

    no_template = vm_manifest("no-template", namespace=namespace)
    del no_template["spec"]["template"]
    message = _rejection(kube, namespace, no_template).message
    # virt-api's mutating webhook answers before the schema does (the fallback has no virt-api).
    assert "spec.template in body is required" in message or "spec.template: Required value" in message
