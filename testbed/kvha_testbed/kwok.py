"""kwok plays every kubelet: nodes that heartbeat through Leases and pods that start instantly.

Only nodes carrying `MANAGED_LABEL=true` are managed. kwok watches nodes with that label selector
evaluated by the API server, so removing the label makes the node vanish from kwok's view: its
Lease stops being renewed (the controller-manager then marks it Ready=Unknown and taints it
`unreachable`) and its pods are no longer driven (a pod being deleted there stays Terminating).
That is how faults.py powers off or partitions a node; putting the label back revives it.

The stages (kwok_stages/*.yaml) are ours, adapted from kwok v0.8.0's own: kwok refuses to start
without stages, and we want exactly: node initialise, pod ready, pod ready again after a node
outage, graceful pod delete. No node stage may have a delay: kwok does not cancel a delayed stage
when a node leaves its management, so kwok's own `node-heartbeat-with-lease` (600 s + jitter)
patched powered-off nodes back to Ready=True ten minutes after they were created. Liveness is the
Lease, which the controller-manager trusts on its own (`node_stage_delays` guards this).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from kvha_testbed.kube import NODES, KubeClient, Obj
from kvha_testbed.plane import ControlPlane, http_ok
from kvha_testbed.procs import ManagedProcess, free_port
from kvha_testbed.waiting import wait_for

MANAGED_LABEL = "kwok.x-k8s.io/managed"
STAGES_DIR = Path(__file__).parent / "kwok_stages"
# Pod IPs come from here; kwok's default (10.0.0.0/24) has 254 addresses and overlaps services.
POD_CIDR = "10.64.0.0/12"
# virt-handler's device plugins advertise these on every KubeVirt node; launcher pods request them.
KVM_DEVICE = "devices.kubevirt.io/kvm"
KUBEVIRT_DEVICES = (KVM_DEVICE, "devices.kubevirt.io/tun", "devices.kubevirt.io/vhost-net")


def stages(stages_dir: Path = STAGES_DIR) -> list[Obj]:
    """Every Stage document the kwok controller is given."""
    return [d for path in sorted(stages_dir.glob("*.yaml")) for d in yaml.safe_load_all(path.read_text()) if d]


def node_stage_delays(stage_docs: list[Obj]) -> dict[str, int]:
    """Stages acting on Nodes that wait before they fire, with their delay in ms (must stay empty)."""
    delays = {}
    for stage in stage_docs:
        spec = stage.get("spec") or {}
        delay = spec.get("delay") or {}
        total = int(delay.get("durationMilliseconds") or 0) + int(delay.get("jitterDurationMilliseconds") or 0)
        if (spec.get("resourceRef") or {}).get("kind") == "Node" and total:
            delays[stage["metadata"]["name"]] = total
    return delays


def node_ready(node: Obj) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def node_manifest(
    name: str,
    *,
    cpu: str | int,
    memory: str,
    pods: int = 250,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    taints: Sequence[Mapping[str, Any]] = (),
) -> Obj:
    """A Node object as a kubelet would register it, marked for kwok to manage.

    Capacity goes into `status` at creation (the API server keeps it) and the node-initialize
    stage reuses it, so the scheduler sees exactly these allocatable resources.
    """
    resources = {"cpu": str(cpu), "memory": memory, "pods": str(pods), "ephemeral-storage": "500Gi"}
    resources |= dict.fromkeys(KUBEVIRT_DEVICES, "1k")
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                **(labels or {}),
                MANAGED_LABEL: "true",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake", **(annotations or {})},
        },
        "spec": {"taints": [dict(t) for t in taints]} if taints else {},
        "status": {"capacity": dict(resources), "allocatable": dict(resources)},
    }


class Kwok:
    """The kwok controller process, configured for the plane it is attached to."""

    def __init__(self, plane: ControlPlane, *, lease_duration_seconds: int = 8, stages_dir: Path = STAGES_DIR) -> None:
        self.plane = plane
        self.lease_duration_seconds = lease_duration_seconds
        self.stages_dir = stages_dir
        self.workdir = plane.workdir / "kwok"
        self.process: ManagedProcess | None = None

    @property
    def client(self) -> KubeClient:
        return self.plane.client

    def start(self, *, timeout: float = 60.0) -> Kwok:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "kwok.yaml"
        config_path.write_text(self._config())
        # kwok acts for every kubelet at once, so it gets cluster-admin under its own name.
        kubeconfig = self.plane.mint_kubeconfig("kwok-controller", ["system:masters"])
        port = free_port()
        # HOME points into the workdir so a developer's ~/.kwok/kwok.yaml is never merged in.
        env = {**os.environ, "HOME": str(self.workdir)}
        argv = [
            str(self.plane.assets.kwok),
            f"--kubeconfig={kubeconfig}",
            f"--config={config_path}",
            f"--manage-nodes-with-label-selector={MANAGED_LABEL}=true",
            f"--node-lease-duration-seconds={self.lease_duration_seconds}",
            f"--cidr={POD_CIDR}",
            f"--server-address=127.0.0.1:{port}",
        ]
        self.process = ManagedProcess(
            name="kwok", argv=argv, env=env, log_path=self.plane.workdir / "logs" / "kwok.log"
        ).start()
        self.plane.processes["kwok"] = self.process
        process = self.process

        def healthy() -> bool:
            process.check_alive()
            return http_ok(f"http://127.0.0.1:{port}/healthz")

        wait_for(healthy, what="kwok to serve /healthz", timeout=timeout, show=lambda: process.log_tail(10))
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.plane.processes.pop("kwok", None)

    def _config(self) -> str:
        docs: list[Obj] = [
            {
                "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
                "kind": "KwokConfiguration",
                # podsOnNodeSyncParallelism must be explicit: with a config file the default (1) is not
                # applied, no worker re-lists a revived node's pods, and they stay NotReady forever.
                "options": {
                    "podPlayStageParallelism": 8,
                    "nodePlayStageParallelism": 4,
                    "nodeLeaseParallelism": 8,
                    "podsOnNodeSyncParallelism": 2,
                },
            }
        ]
        docs.extend(stages(self.stages_dir))
        return yaml.safe_dump_all(docs, sort_keys=False)

    # ----------------------------------------------------------------------------- nodes

    def add_node(
        self,
        name: str,
        *,
        cpu: str | int = 8,
        memory: str = "32Gi",
        pods: int = 250,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        taints: Sequence[Mapping[str, Any]] = (),
        wait_ready: bool = True,
        timeout: float = 60.0,
    ) -> Obj:
        """Register a kwok node; by default wait until it is Ready. Returns the Node object."""
        manifest = node_manifest(
            name, cpu=cpu, memory=memory, pods=pods, labels=labels, annotations=annotations, taints=taints
        )
        self.client.create(NODES.path(), manifest)
        if not wait_ready:
            return self.client.get(NODES.path(name=name))
        return self.wait_ready(name, timeout=timeout)

    def wait_ready(self, name: str, *, timeout: float = 60.0) -> Obj:
        path = NODES.path(name=name)
        return wait_for(
            lambda: node if node_ready(node := self.client.get(path)) else None,
            what=f"node {name} to be Ready",
            timeout=timeout,
            show=lambda: self.client.get(path).get("status", {}).get("conditions"),
        )

    def delete_node(self, name: str) -> None:
        self.client.delete(NODES.path(name=name))

    def set_managed(self, name: str, managed: bool) -> None:
        """Put kwok's label on or off a node: the switch behind power-off, partition and revive."""
        self.client.patch(NODES.path(name=name), {"metadata": {"labels": {MANAGED_LABEL: "true" if managed else None}}})
