"""A failover scenario on the testbed: some nodes, a namespace of VMs, an HAPolicy and the operator.

Tests, the demo and the benchmarks all stage incidents the same way. Each scenario's HAPolicy
watches only its own nodes (by a unique label) and protects only its own namespace, so scenarios
sharing one control plane never see each other's nodes, VMs or incidents.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kvha_testbed.kube import NODES, VMS, KubeClient
from kvha_testbed.objects import eviction_tolerations, vm_manifest
from kvha_testbed.operator_process import NAMESPACE, OperatorProcess, ensure_namespace
from kvha_testbed.sim.context import SimulatorConfig
from kvha_testbed.testbed import Testbed
from kvha_testbed.waiting import wait_for

HAPOLICIES = "/apis/kvha.io/v1alpha1/hapolicies"
NODEFAILOVERS = "/apis/kvha.io/v1alpha1/nodefailovers"
FENCE_CONFIRMED = "kvha.io/fence-confirmed"
Obj = dict[str, Any]

# Short thresholds so a scenario takes seconds: the controller-manager marks a silent node
# Ready=Unknown after its grace period, and detection then waits this long on top.
FAST_DETECTION: Obj = {
    "unhealthyConditions": [
        {"type": "Ready", "status": "Unknown", "duration": "2s"},
        {"type": "Ready", "status": "False", "duration": "2s"},
    ],
    "leaseStaleAfter": "20s",
    "healthyDelay": "5s",
}


@dataclass
class Scenario:
    """One test's slice of the cluster: its nodes, namespace, policy and operator."""

    bed: Testbed
    namespace: str
    label: str
    make_nodes: Callable[..., list[str]]
    policy_name: str = ""
    operators: list[OperatorProcess] = field(default_factory=list)
    # KubeVirt's own timeout before it fails the VMIs of a silent node (real default: 5 min). The
    # testbed's default is short so the simulator's tests run fast; a failover scenario needs the
    # real ratio, where kvha acts long before KubeVirt would, or the two race for the capacity.
    kubevirt_heartbeat_timeout: float = 300.0
    # Likewise Kubernetes' own eviction of a silent node's pods (real default: 300 s): evicted
    # pods are removed as soon as the node is fenced, and KubeVirt restarts all of them at once.
    eviction_toleration_seconds: int = 300
    _previous_sim_config: SimulatorConfig | None = None

    @classmethod
    def standalone(cls, bed: Testbed, name: str, *, host_prefix: str | None = None) -> Scenario:
        """A scenario outside pytest (demo, benchmarks): its own namespace `name`, policy `name`,
        and hosts named `<host_prefix>-N` (default `<name>-host-N`)."""
        bed.client.create_or_get("/api/v1/namespaces", {"metadata": {"name": name}})
        counter = itertools.count(1)
        prefix = host_prefix or f"{name}-host"

        def make_nodes(count: int, *, labels: dict[str, str], **kwargs: Any) -> list[str]:
            names = [f"{prefix}-{next(counter)}" for _ in range(count)]
            for node in names:
                bed.add_node(node, labels=labels, **kwargs)
            return names

        return cls(bed=bed, namespace=name, label=name, make_nodes=make_nodes, policy_name=name)

    def __post_init__(self) -> None:
        ctx = self.bed.sim.ctx
        self._previous_sim_config = ctx.config
        ctx.config = replace(
            ctx.config,
            heartbeat_timeout=self.kubevirt_heartbeat_timeout,
            eviction_toleration_seconds=self.eviction_toleration_seconds,
        )

    @property
    def kube(self) -> KubeClient:
        return self.bed.client

    def nodes(self, count: int, **kwargs: Any) -> list[str]:
        labels = {"kvha-test": self.label, **kwargs.pop("labels", {})}
        return self.make_nodes(count, labels=labels, **kwargs)

    def policy(self, **spec: Any) -> Obj:
        body = {
            "apiVersion": "kvha.io/v1alpha1",
            "kind": "HAPolicy",
            "metadata": {"name": self.policy_name},
            "spec": {
                "nodeSelector": {"matchLabels": {"kvha-test": self.label}},
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": self.namespace}},
                "detection": FAST_DETECTION,
                **spec,
            },
        }
        return self.kube.create(HAPOLICIES, body)

    def remediation_fencing(self, template: str = "automatic") -> Obj:
        """A SelfNodeRemediationTemplate in the scenario's namespace (the simulated fence agent
        powers the node off and applies the out-of-service taint), and the policy's `fencing`
        that creates remediations from it."""
        api_version = "self-node-remediation.medik8s.io/v1alpha1"
        self.kube.create_or_get(
            f"/apis/{api_version}/namespaces/{self.namespace}/selfnoderemediationtemplates",
            {
                "apiVersion": api_version,
                "kind": "SelfNodeRemediationTemplate",
                "metadata": {"name": template, "namespace": self.namespace},
                "spec": {"template": {"spec": {"remediationStrategy": "OutOfServiceTaint"}}},
            },
        )
        return {
            "strategy": "Remediation",
            "remediationTemplate": {
                "apiVersion": api_version,
                "kind": "SelfNodeRemediationTemplate",
                "name": template,
                "namespace": self.namespace,
            },
        }

    def vm(self, name: str, *, priority: str | None = None, **kwargs: Any) -> None:
        annotations = dict(kwargs.pop("annotations", {}))
        if priority:
            annotations["kvha.io/restart-priority"] = priority
        if self.bed.kubevirt is not None:
            # Real virt-controller's launcher pods carry the VMI's tolerations and nothing else, so
            # give them the cluster default the testbed's apiserver shortens (see the field).
            kwargs["tolerations"] = [
                *kwargs.get("tolerations", ()),
                *eviction_tolerations(self.eviction_toleration_seconds),
            ]
        self.kube.create(
            VMS.path(self.namespace), vm_manifest(name, namespace=self.namespace, annotations=annotations, **kwargs)
        )

    def host_running(
        self, vms: Sequence[str], *, memory: str, vm_memory: str, spare_hosts: int = 2, spare_memory: str = "16Gi"
    ) -> tuple[str, dict[str, str | None]]:
        """One host running `vms` (the only node when they start, so they land there), then
        `spare_hosts` empty ones to restart them on; the host and each VM's current VMI uid."""
        [host] = self.nodes(1, memory=memory)
        for name in vms:
            self.vm(name, memory=vm_memory)
        for name in vms:
            self.bed.wait_vm_status(self.namespace, name, "Running")
        self.nodes(spare_hosts, memory=spare_memory)
        return host, {name: self.vmi_uid(name) for name in vms}

    def operator(self, identity: str = "kvha-0", *, kubeconfig: Path | None = None, **kwargs: Any) -> OperatorProcess:
        """The operator as admin, or as whoever `kubeconfig` names (for example the chart's
        ServiceAccount, to prove its RBAC is enough)."""
        ensure_namespace(self.kube, kwargs.get("namespace", NAMESPACE))
        op = OperatorProcess(kubeconfig or self.bed.kubeconfig, identity=identity, **kwargs)
        self.operators.append(op)
        return op

    def failovers(self) -> list[Obj]:
        items, _ = self.kube.list(NODEFAILOVERS)
        return [f for f in items if f["spec"]["policyName"] == self.policy_name]

    def failover(self, *, phase: str | set[str] | None = None, timeout: float = 90.0) -> Obj:
        """The scenario's one NodeFailover, once it reaches `phase` (any phase if None)."""
        wanted = {phase} if isinstance(phase, str) else phase

        def probe() -> Obj | None:
            found = self.failovers()
            if len(found) > 1:
                raise AssertionError(f"expected one incident, found {[f['metadata']['name'] for f in found]}")
            if found and (wanted is None or (found[0].get("status") or {}).get("phase") in wanted):
                return found[0]
            return None

        return wait_for(
            probe,
            what=f"a NodeFailover of {self.policy_name} in phase {wanted or 'any'}",
            timeout=timeout,
            show=self.diagnose,
        )

    def policy_status(self) -> Obj:
        return self.kube.get(f"{HAPOLICIES}/{self.policy_name}").get("status") or {}

    def incident_of(self, node: str) -> str | None:
        """The name of the node's open NodeFailover (the one kvha still drives), if any."""
        open_ = [
            f
            for f in self.failovers()
            if f["spec"]["nodeName"] == node and not (f.get("status") or {}).get("finished", False)
        ]
        return max(open_, key=lambda f: str(f["spec"]["detectedAt"]))["metadata"]["name"] if open_ else None

    def confirm_fenced(self, node: str) -> str:
        """What an administrator does after checking the machine is really off (BMC, PDU): annotate
        the node with the name of the incident it confirms, as the NodeFailover's message says.
        Returns that name."""
        incident = self.incident_of(node)
        if incident is None:
            raise AssertionError(f"node {node} has no open NodeFailover to confirm")
        self.annotate_node(node, FENCE_CONFIRMED, incident)
        return incident

    def annotate_node(self, node: str, key: str, value: str | None) -> None:
        self.kube.patch(f"/api/v1/nodes/{node}", {"metadata": {"annotations": {key: value}}})

    def power_off_until_restored(self, host: str, *, restored: int = 1) -> None:
        """Power `host` off, confirm the fencing its incident asks for, and wait until `restored` of
        its VMs run again: the point "mid-restart" at which the takeover scenarios strike."""
        self.bed.faults.power_off(host)
        self.failover(phase="Fencing")
        self.confirm_fenced(host)
        wait_for(
            lambda: (self.failover().get("status") or {}).get("restored", 0) >= restored,
            what=f"{restored} VM(s) of {host} to be restored",
            timeout=90,
        )

    def has_taint(self, node: str, key: str) -> bool:
        taints = self.kube.get(NODES.path(name=node))["spec"].get("taints") or []
        return any(t["key"] == key for t in taints)

    def vmi_uid(self, name: str) -> str | None:
        vmi = self.bed.vmi(self.namespace, name)
        return vmi["metadata"]["uid"] if vmi else None

    def diagnose(self) -> object:
        """The scenario's incidents and the tail of each operator's log, for failure messages."""
        return {
            "failovers": [f.get("status") for f in self.failovers()],
            "operator": [op.log_tail(25) for op in self.operators],
        }

    def cleanup(self) -> None:
        if self._previous_sim_config is not None:
            self.bed.sim.ctx.config = self._previous_sim_config
        for op in self.operators:
            op.stop()
        for failover in self.failovers():
            with contextlib.suppress(Exception):
                self.kube.delete(f"{NODEFAILOVERS}/{failover['metadata']['name']}")
        with contextlib.suppress(Exception):
            self.kube.delete(f"{HAPOLICIES}/{self.policy_name}")
