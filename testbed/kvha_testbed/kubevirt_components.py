"""KubeVirt's own virt-controller and virt-api, run as local processes against the testbed's plane.

What virt-operator does in a cluster is done here, with what virt-operator's own generators wrote
(build.py's `kubevirt` recipe: CRDs, RBAC, webhook configurations, the handler's admission policy):

* the `kubevirt` namespace, KubeVirt's service accounts and RBAC, the `kubevirt-ca` configmap, and a
  KubeVirt CR whose status says Deployed (virt-controller and virt-api wait for that);
* virt-api with a serving certificate for 127.0.0.1, and the webhook configurations rewritten from
  a service reference to virt-api's local URL and the testbed's CA, so KubeVirt's own admission
  (defaults, validation, and the VMI status guard) runs inside the real API server;
* virt-controller, acting as its own service account (virt-api reverts VMI status writes by anyone
  but KubeVirt's service accounts, so identities matter), electing itself leader on a Lease;
* a `virt-handler` DaemonSet that schedules nowhere: KubeVirt's node controller refuses to judge a
  node without exactly one handler DaemonSet. The handler's work itself is simulated
  (`kvha_testbed.sim.handler`), as `HANDLER_SERVICE_ACCOUNT`.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from kvha_testbed.kube import NAMESPACES, VMS, Credentials, KubeClient, KubeError, Obj, Resource
from kvha_testbed.plane import ControlPlane, https_ok
from kvha_testbed.procs import ManagedProcess, free_port

NAMESPACE = "kubevirt"
CONTROLLER_SERVICE_ACCOUNT = "kubevirt-controller"
API_SERVICE_ACCOUNT = "kubevirt-apiserver"
HANDLER_SERVICE_ACCOUNT = "kubevirt-handler"
LAUNCHER_IMAGE = "quay.io/kubevirt/virt-launcher:v1.7.0"
HANDLER_DAEMONSET = "virt-handler"
# The handler DaemonSet must exist but never run a pod: its work is simulated.
_NO_NODE = {"kvha-testbed/virt-handler-pods": "none"}

KUBEVIRTS = Resource("kubevirt.io", "v1", "kubevirts")
CONFIG_MAPS = Resource("", "v1", "configmaps")
DAEMON_SETS = Resource("apps", "v1", "daemonsets")
_ADMISSION = "admissionregistration.k8s.io"
_RBAC = "rbac.authorization.k8s.io"
# Every kind the generated manifests hold (besides CRDs), and where it lives.
_KINDS: dict[str, Resource] = {
    "ServiceAccount": Resource("", "v1", "serviceaccounts"),
    "ClusterRole": Resource(_RBAC, "v1", "clusterroles", namespaced=False),
    "ClusterRoleBinding": Resource(_RBAC, "v1", "clusterrolebindings", namespaced=False),
    "Role": Resource(_RBAC, "v1", "roles"),
    "RoleBinding": Resource(_RBAC, "v1", "rolebindings"),
    "MutatingWebhookConfiguration": Resource(_ADMISSION, "v1", "mutatingwebhookconfigurations", namespaced=False),
    "ValidatingWebhookConfiguration": Resource(_ADMISSION, "v1", "validatingwebhookconfigurations", namespaced=False),
    "ValidatingAdmissionPolicy": Resource(_ADMISSION, "v1", "validatingadmissionpolicies", namespaced=False),
    "ValidatingAdmissionPolicyBinding": Resource(
        _ADMISSION, "v1", "validatingadmissionpolicybindings", namespaced=False
    ),
}


def load_manifests(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)]


def local_webhooks(configuration: Obj, *, url: str, ca_bundle: bytes) -> Obj:
    """A webhook configuration whose service references point at `url` (keeping each path)."""
    webhooks = []
    for webhook in configuration.get("webhooks") or []:
        service = (webhook.get("clientConfig") or {}).get("service") or {}
        client_config = {"url": url + (service.get("path") or "/"), "caBundle": base64.b64encode(ca_bundle).decode()}
        webhooks.append({**webhook, "clientConfig": client_config})
    return {**configuration, "webhooks": webhooks}


def apply_manifest(client: KubeClient, obj: Obj) -> Obj:
    """Server-side apply one generated object (its apiVersion is taken from `_KINDS`, see below)."""
    resource = _KINDS[obj["kind"]]
    # virt-operator applies through typed clients, so its generators' TypeMeta is not always right
    # (the handler's ValidatingAdmissionPolicy says apiVersion "v1").
    body = {**obj, "apiVersion": f"{resource.group}/{resource.version}" if resource.group else resource.version}
    meta = obj["metadata"]
    return client.apply(resource.path(meta.get("namespace"), meta["name"]), body)


class RealKubeVirt:
    """virt-api + virt-controller for one control plane; `start()` after the plane's CRDs exist."""

    def __init__(self, plane: ControlPlane, *, start_timeout: float = 120.0) -> None:
        self.plane = plane
        self.manifests = plane.assets.kubevirt_manifests
        self.start_timeout = start_timeout
        self.processes: dict[str, ManagedProcess] = {}
        self.timings: dict[str, float] = {}
        self._handler: Credentials | None = None

    @property
    def client(self) -> KubeClient:
        return self.plane.client

    def start(self) -> RealKubeVirt:
        started = time.monotonic()
        self._install()
        self._mark("installed", started)
        api_port = free_port()
        self._start_virt_api(api_port)
        self._mark("virt-api", started)
        self._install_webhooks(api_port)
        self._mark("webhooks", started)
        self._start_virt_controller()
        self._mark("virt-controller", started)
        return self

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            self.processes[name].stop()
            self.plane.processes.pop(name, None)
        self.processes.clear()

    def handler_credentials(self) -> Credentials:
        """virt-handler's identity: the only one (with KubeVirt's others) whose VMI status writes stick."""
        if self._handler is None:
            self._handler = self.plane.serviceaccount_credentials(NAMESPACE, HANDLER_SERVICE_ACCOUNT, create=False)
        return self._handler

    # ----------------------------------------------------------------------------- install

    def _install(self) -> None:
        client = self.client
        client.create_or_get(NAMESPACES.path(), {"metadata": {"name": NAMESPACE}})
        for obj in load_manifests(self.manifests / "rbac.yaml"):
            apply_manifest(client, obj)
        # Not applied: admission-policies.yaml, virt-handler's node restriction. It lets a handler
        # touch only the node its pod-bound token names, and the simulated handler has no pods.
        client.apply(
            CONFIG_MAPS.path(NAMESPACE, "kubevirt-ca"),
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "kubevirt-ca", "namespace": NAMESPACE},
                "data": {"ca-bundle": self.plane.ca_certificate.read_text()},
            },
        )
        client.apply(DAEMON_SETS.path(NAMESPACE, HANDLER_DAEMONSET), _handler_daemonset())
        client.create_or_get(
            KUBEVIRTS.path(NAMESPACE),
            {
                "apiVersion": "kubevirt.io/v1",
                "kind": "KubeVirt",
                "metadata": {"name": "kubevirt", "namespace": NAMESPACE},
                "spec": {"configuration": {}},
            },
        )
        # What virt-operator reports once it has deployed everything; both components wait for it.
        client.patch(
            KUBEVIRTS.path(NAMESPACE, "kubevirt", "status"),
            {"status": {"phase": "Deployed", "defaultArchitecture": "amd64"}},
        )

    def _install_webhooks(self, api_port: int) -> None:
        url = f"https://127.0.0.1:{api_port}"
        ca_bundle = self.plane.ca_certificate.read_bytes()
        for obj in load_manifests(self.manifests / "webhooks.yaml"):
            apply_manifest(self.client, local_webhooks(obj, url=url, ca_bundle=ca_bundle))
        self._await(self.processes["virt-api"], "virt-api's VM validation to take effect", self._vm_validated)

    def _vm_validated(self) -> bool:
        probe = {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "metadata": {"name": "webhook-probe", "namespace": "default"},
            "spec": {"runStrategy": "Sometimes", "template": {"spec": {"domain": {"devices": {}}}}},
        }
        try:
            self.client.request("POST", VMS.path("default"), body=probe, query={"dryRun": "All"})
        except KubeError as error:
            return "Invalid RunStrategy" in error.message
        return False

    # ----------------------------------------------------------------------------- processes

    def _kubeconfig(self, service_account: str) -> Path:
        return self.plane.serviceaccount_kubeconfig(NAMESPACE, service_account, create=False)

    def _start_virt_api(self, port: int) -> None:
        serving = self.plane.serving_certificate("virt-api")
        process = self._spawn(
            "virt-api",
            [
                str(self.plane.assets.virt_api),
                f"--kubeconfig={self._kubeconfig(API_SERVICE_ACCOUNT)}",
                "--listen=127.0.0.1",
                f"--port={port}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-key-file={serving.key}",
                # Only used to reach virt-handler (console, VNC), which is simulated.
                f"--handler-cert-file={serving.cert}",
                f"--handler-key-file={serving.key}",
                f"--console-server-port={free_port()}",
            ],
        )
        health = f"https://127.0.0.1:{port}/apis/subresources.kubevirt.io/v1/healthz"
        self._await(process, "/healthz ok", lambda: https_ok(health))

    def _start_virt_controller(self) -> None:
        serving = self.plane.serving_certificate("virt-controller")
        port = free_port()
        process = self._spawn(
            "virt-controller",
            [
                str(self.plane.assets.virt_controller),
                f"--kubeconfig={self._kubeconfig(CONTROLLER_SERVICE_ACCOUNT)}",
                f"--launcher-image={LAUNCHER_IMAGE}",
                "--listen=127.0.0.1",
                f"--port={port}",
                f"--prom-cert-file={serving.cert}",
                f"--prom-key-file={serving.key}",
            ],
        )
        self._await(process, "leadership (/leader ok)", lambda: https_ok(f"https://127.0.0.1:{port}/leader"))

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        process = ManagedProcess(name=name, argv=argv, log_path=self.plane.workdir / "logs" / f"{name}.log").start()
        self.processes[name] = process
        self.plane.processes[name] = process  # health checks and teardown with the rest of the plane
        return process

    def _await(self, process: ManagedProcess, what: str, probe: Callable[[], bool]) -> None:
        self.plane.await_process(process, what, probe, timeout=self.start_timeout)

    def _mark(self, step: str, started: float) -> None:
        self.timings[step] = round(time.monotonic() - started, 2)


def _handler_daemonset() -> Obj:
    labels = {"kubevirt.io": "virt-handler"}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": HANDLER_DAEMONSET, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": _NO_NODE,
                    "serviceAccountName": HANDLER_SERVICE_ACCOUNT,
                    "containers": [{"name": "virt-handler", "image": "quay.io/kubevirt/virt-handler:v1.7.0"}],
                },
            },
        },
    }
