"""Free CPU and memory per node, and what a VM's launcher pod will request.

Capacity is what the scheduler sees: allocatable minus the requests of every non-terminal pod bound
to the node. Nodes the scheduler or KubeVirt would never use for a VM (cordoned, no virt-handler,
or named in `exclude` — the failed and unhealthy nodes) are left out here; taints and selectors are
per VM, in `constraints`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from kvha.models.resources import Resources
from kvha.models.views import NodeView, Placement, PodView, Taint, VMView

_NONE: Mapping[str, int] = MappingProxyType({})

# A conservative estimate of what virt-launcher adds to the guest, after KubeVirt's
# GetMemoryOverhead (virt-launcher, its monitor, virtqemud, virtlogd, QEMU and video RAM come to
# about 250 Mi, plus page tables of 1/512 of guest memory and 8 Mi per vCPU) and its small helper
# containers' CPU. Only used when the old launcher pod is gone; erring high keeps a plan from
# promising a node more than it has.
LAUNCHER_MEMORY_OVERHEAD = 320 * 2**20
LAUNCHER_MEMORY_PER_VCPU = 8 * 2**20
LAUNCHER_PAGE_TABLE_DIVISOR = 512
LAUNCHER_CPU_OVERHEAD_MILLIS = 100


@dataclass(frozen=True, slots=True)
class NodeCapacity:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    free_cpu_millis: int = 0
    free_memory_bytes: int = 0
    free_extended: Mapping[str, int] = field(default_factory=lambda: _NONE)
    """Extended resources and hugepages left, by name (absent: none at all)."""


def node_capacities(*, nodes: Iterable[NodeView], pods: Iterable[PodView], exclude: set[str]) -> list[NodeCapacity]:
    """The nodes a VM could be restarted on, with what is left of their allocatable resources."""
    used_cpu: dict[str, int] = {}
    used_memory: dict[str, int] = {}
    used_extended: dict[str, list[tuple[str, int]]] = {}
    for pod in pods:  # the hot loop at 100k pods: plain dict arithmetic, no per-pod objects
        node = pod.node_name
        if node is None or pod.phase in ("Succeeded", "Failed"):
            continue
        used_cpu[node] = used_cpu.get(node, 0) + pod.cpu_millis
        used_memory[node] = used_memory.get(node, 0) + pod.memory_bytes
        if pod.extended_requests:
            used_extended.setdefault(node, []).extend(pod.extended_requests)
    return [
        NodeCapacity(
            name=node.name,
            labels=node.labels,
            taints=node.taints,
            free_cpu_millis=node.allocatable_cpu_millis - used_cpu.get(node.name, 0),
            free_memory_bytes=node.allocatable_memory_bytes - used_memory.get(node.name, 0),
            free_extended=_free_extended(node.allocatable_extended, used_extended.get(node.name, ()))
            if node.allocatable_extended
            else _NONE,
        )
        for node in nodes
        if not node.unschedulable and node.kubevirt_schedulable and node.name not in exclude
    ]


def _free_extended(allocatable: Iterable[tuple[str, int]], used: Iterable[tuple[str, int]]) -> Mapping[str, int]:
    free = dict(allocatable)
    for name, amount in used:
        free[name] = free.get(name, 0) - amount
    return free


def reserve(nodes: Iterable[NodeCapacity], reservations: Mapping[str, Resources]) -> list[NodeCapacity]:
    """Capacities after setting aside resources per node for restarts not yet visible as pods."""
    return [
        replace(
            node,
            free_cpu_millis=node.free_cpu_millis - reservations[node.name].cpu_millis,
            free_memory_bytes=node.free_memory_bytes - reservations[node.name].memory_bytes,
        )
        if node.name in reservations
        else node
        for node in nodes
    ]


def launcher_requests(vm: VMView, old_pod: PodView | None) -> Resources:
    """What the restarted VM's launcher pod will request.

    The old launcher pod's requests are exact (they include KubeVirt's overhead for this very VM)
    and are used whenever the pod is still known; otherwise the guest's requests plus a
    conservative overhead estimate.
    """
    return Resources(cpu_millis=launcher_cpu_millis(vm, old_pod), memory_bytes=launcher_memory_bytes(vm, old_pod))


# The two halves of `launcher_requests` as plain ints, for loops over every protected VM of the
# cluster: a Resources per VM there costs more than the rest of the loop (a frozen dataclass's
# constructor is ~20 times a tuple's), and one name per unit leaves no order to get wrong. Each
# tests "is the old pod's request known" itself: a shared helper's two extra calls per VM cost as
# much again (protected_demand at 100k VMs: 70 ms inline, 130 ms with the helper).
def launcher_cpu_millis(vm: VMView, old_pod: PodView | None) -> int:
    """CPU millicores of `launcher_requests`."""
    if old_pod is not None and (old_pod.cpu_millis or old_pod.memory_bytes):
        return old_pod.cpu_millis
    return vm.cpu_millis + LAUNCHER_CPU_OVERHEAD_MILLIS


def launcher_memory_bytes(vm: VMView, old_pod: PodView | None) -> int:
    """Memory bytes of `launcher_requests`."""
    if old_pod is not None and (old_pod.cpu_millis or old_pod.memory_bytes):
        return old_pod.memory_bytes
    vcpus = max(1, math.ceil(vm.cpu_millis / 1000))
    return (
        vm.memory_bytes
        + LAUNCHER_MEMORY_OVERHEAD
        + math.ceil(vm.memory_bytes / LAUNCHER_PAGE_TABLE_DIVISOR)
        + vcpus * LAUNCHER_MEMORY_PER_VCPU
    )


def launcher_extended_requests(vm: VMView, old_pod: PodView | None) -> tuple[tuple[str, int], ...]:
    """Extended resources and hugepages of the restarted launcher pod: the old pod's when known."""
    return old_pod.extended_requests if old_pod is not None else vm.extended_requests


def launcher_placement(vm: VMView, old_pod: PodView | None) -> Placement:
    """The scheduling constraints of the restarted launcher pod: the old pod's when known (they
    include what KubeVirt adds, such as CPU-model node selectors), else the VM template's."""
    return old_pod.placement if old_pod is not None else vm.placement
