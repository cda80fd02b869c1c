"""Admission control of one HAPolicy: which VMs it selects and protects, and how many host
failures the cluster can absorb for them.

This is the slow half of a policy's evaluation (615 ms at 100,000 VMs, against milliseconds for
detection), so it runs apart from detection: the handler computes it off the event loop when its
inputs change, and `evaluate_policy` carries the latest result over. Detection, and the incidents it
opens, never waits for it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from kvha.admission import ProtectedVM, capacity_for_protected
from kvha.models.hapolicy import HAPolicySpec
from kvha.models.views import NodeView, PodView, VMIView, VMView
from kvha.placement import NodeCapacity, PodTopology, node_capacities
from kvha.protection import Protection, classify, priority_limit, selects


@dataclass(frozen=True)
class AdmissionSnapshot:
    """Plain copies, not live indices: admission control runs in a thread while the caches change."""

    policy: HAPolicySpec
    vms: Sequence[VMView]
    namespace_labels: Mapping[str, Mapping[str, str]]
    vmis: Mapping[str, VMIView]
    pods: Sequence[PodView]
    launcher_pods: Mapping[str, Collection[PodView]]
    nodes: Sequence[NodeView]
    """Every node: pod topology counts the pods on all of them."""
    healthy: Collection[str]
    """The watched nodes detection called Healthy: the only ones that can take a VM."""


@dataclass(frozen=True)
class Admission:
    protections: Mapping[str, Protection] = field(default_factory=dict)
    """By VM key, the verdict on each VM the policy selects (its owner hears of an unprotected one)."""
    unprotectable: Mapping[str, int] = field(default_factory=dict)
    """Selected VMs that cannot be protected, by reason."""
    capped: int = 0
    """Protected VMs that claim a priority above the namespace's limit and restart at the limit."""
    capacity: int = 0
    """Host failures the cluster can absorb for the protected VMs."""

    @property
    def protected(self) -> int:
        return sum(1 for p in self.protections.values() if p.protected)


def assess_admission(snap: AdmissionSnapshot) -> Admission:
    policy = snap.policy
    labels = snap.namespace_labels
    selected = [vm for vm in snap.vms if selects(policy, vm, labels.get(vm.namespace, {}))]
    default = policy.restart.default_priority
    limits = policy.restart.priority_limits
    protections = {
        vm.key: classify(vm, default_priority=default, limit=priority_limit(limits, labels.get(vm.namespace, {})))
        for vm in selected
    }
    protected = [vm for vm in selected if protections[vm.key].protected]
    healthy = set(snap.healthy)
    capacity = protected_capacity(
        policy=policy,
        protected=running_protected(
            protected=protected, protections=protections, vmis=snap.vmis, launcher_pods=snap.launcher_pods
        ),
        nodes=node_capacities(nodes=[n for n in snap.nodes if n.name in healthy], pods=snap.pods, exclude=set()),
        topology=PodTopology(nodes=snap.nodes, pods=snap.pods, namespace_labels=labels),
    )
    return Admission(
        protections=protections,
        unprotectable=dict(Counter(p.reason.value for p in protections.values() if p.reason is not None)),
        capped=sum(1 for vm in protected if protections[vm.key].claimed is not None),
        capacity=capacity,
    )


def running_protected(
    *,
    protected: Sequence[VMView],
    protections: Mapping[str, Protection],
    vmis: Mapping[str, VMIView],
    launcher_pods: Mapping[str, Collection[PodView]],
) -> list[ProtectedVM]:
    """The protected VMs running now, where, with their launcher pods: what a host failure displaces."""
    running = []
    for vm in protected:
        vmi = vmis.get(vm.key)
        if vmi is None or vmi.node_name is None or vmi.phase != "Running":
            continue  # not running anywhere: nothing to absorb
        pods = launcher_pods.get(vmi.uid, ())
        pod = next((p for p in pods if not p.terminal), None)
        running.append(ProtectedVM(vm=vm, node=vmi.node_name, pod=pod, priority=int(protections[vm.key].priority)))
    return running


def protected_capacity(
    *,
    policy: HAPolicySpec,
    protected: Sequence[ProtectedVM],
    nodes: Sequence[NodeCapacity],
    topology: PodTopology | None,
) -> int:
    """How many host failures the cluster can absorb for these VMs, as the policy's status shows it."""
    if not nodes:
        return 0
    target = policy.admission_control.host_failures_to_tolerate
    # Look a little past the target so the column shows headroom, not just "target reached".
    limit = min(max(target + 2, 3), max(len(nodes) - 1, 0))
    return capacity_for_protected(protected=protected, nodes=nodes, limit=limit, topology=topology)
