"""What virt-controller asks the scheduler for: the virt-launcher pod of a VMI.

`launcher_requests` is the single place that turns a VMI spec into pod resource requests. It
follows KubeVirt's renderresources.go (GetMemoryOverhead and the CPU allocation ratio) closely
enough that "does this VM fit on that node" has the same answer as in a real cluster:

memory request = guest memory (domain.resources.requests.memory, else domain.memory.guest)
                 + overhead, where overhead =
                     guest / 512                      page tables
                   + 220Mi                            virt-launcher-monitor 25 + virt-launcher 100
                                                      + virtlogd 25 + virtqemud 40 + qemu 30
                   + 8Mi per vCPU                     vCPU tables
                   + 8Mi                              the IOThread
                   + 32Mi                             video RAM (graphics device is autoattached)
cpu request    = domain.resources.requests.cpu if set, else vCPUs / cpuAllocationRatio (KubeVirt's
                 default ratio is 10: a 4-vCPU VM requests 400m); with dedicatedCpuPlacement,
                 request = limit = vCPUs.  vCPUs = cores * sockets * threads (each default 1).
plus devices.kubevirt.io/kvm: 1 (request = limit), like the real pod.
"""

from __future__ import annotations

import hashlib
from fractions import Fraction
from typing import Any

from kvha_testbed.objects import eviction_tolerations
from kvha_testbed.sim.quantity import MI, format_cpu, format_memory, parse_quantity

Obj = dict[str, Any]

KVM_DEVICE = "devices.kubevirt.io/kvm"
DEFAULT_CPU_ALLOCATION_RATIO = 10
STATIC_OVERHEAD_MI = 25 + 100 + 25 + 40 + 30
PER_VCPU_OVERHEAD_MI = 8
IOTHREAD_OVERHEAD_MI = 8
VIDEO_OVERHEAD_MI = 32
PAGETABLE_DIVISOR = 512
# KubeVirt's default VMI terminationGracePeriodSeconds, and the launcher's own margin on top.
DEFAULT_GRACE_SECONDS = 180
LAUNCHER_GRACE_MARGIN_SECONDS = 15
LAUNCHER_IMAGE = "quay.io/kubevirt/virt-launcher:v1.7.1"
SCHEDULABLE_LABEL = "kubevirt.io/schedulable"
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def vcpus(vmi_spec: Obj) -> int:
    cpu = (vmi_spec.get("domain") or {}).get("cpu") or {}
    return int(cpu.get("cores") or 1) * int(cpu.get("sockets") or 1) * int(cpu.get("threads") or 1)


def guest_memory(vmi_spec: Obj) -> Fraction:
    domain = vmi_spec.get("domain") or {}
    requested = ((domain.get("resources") or {}).get("requests") or {}).get("memory")
    guest = (domain.get("memory") or {}).get("guest")
    if requested is None and guest is None:
        raise ValueError("VMI spec has neither domain.resources.requests.memory nor domain.memory.guest")
    return parse_quantity(str(requested if requested is not None else guest))


def memory_overhead(vmi_spec: Obj) -> Fraction:
    pagetables = guest_memory(vmi_spec) / PAGETABLE_DIVISOR
    fixed_mi = STATIC_OVERHEAD_MI + PER_VCPU_OVERHEAD_MI * vcpus(vmi_spec) + IOTHREAD_OVERHEAD_MI
    fixed_mi += VIDEO_OVERHEAD_MI
    return pagetables + fixed_mi * MI


def launcher_requests(vmi_spec: Obj, *, cpu_allocation_ratio: int = DEFAULT_CPU_ALLOCATION_RATIO) -> Obj:
    """The compute container's `resources` (requests and, where KubeVirt sets them, limits)."""
    domain = vmi_spec.get("domain") or {}
    resources = domain.get("resources") or {}
    requested_cpu = (resources.get("requests") or {}).get("cpu")
    dedicated = bool((domain.get("cpu") or {}).get("dedicatedCpuPlacement"))
    count = vcpus(vmi_spec)
    if dedicated:
        cpu = Fraction(count)
    elif requested_cpu is not None:
        cpu = parse_quantity(requested_cpu)
    else:
        cpu = Fraction(count, cpu_allocation_ratio)
    overhead = memory_overhead(vmi_spec)
    requests: Obj = {
        "cpu": format_cpu(cpu),
        "memory": format_memory(guest_memory(vmi_spec) + overhead),
        KVM_DEVICE: "1",
    }
    limits: Obj = {KVM_DEVICE: "1"}
    user_limits = resources.get("limits") or {}
    if "memory" in user_limits:
        limits["memory"] = format_memory(parse_quantity(user_limits["memory"]) + overhead)
    if dedicated:
        limits["cpu"] = format_cpu(cpu)
    elif "cpu" in user_limits:
        limits["cpu"] = format_cpu(parse_quantity(user_limits["cpu"]))
    return {"requests": requests, "limits": limits}


def launcher_pod_name(vmi_name: str, vmi_uid: str) -> str:
    """`virt-launcher-<vmi>-xxxxx`, the suffix derived from the VMI uid.

    Real virt-controller uses generateName; a deterministic suffix makes a retried create after a
    stale cache read a harmless 409 instead of a second launcher pod.
    """
    digest = hashlib.sha256(vmi_uid.encode()).digest()
    suffix = "".join(_NAME_ALPHABET[b % len(_NAME_ALPHABET)] for b in digest[:5])
    return f"virt-launcher-{vmi_name}-{suffix}"


def launcher_pod(
    vmi: Obj,
    *,
    cpu_allocation_ratio: int = DEFAULT_CPU_ALLOCATION_RATIO,
    eviction_toleration_seconds: int | None = None,
) -> Obj:
    """The virt-launcher pod for a VMI: labels, owner, placement constraints and requests."""
    meta, spec = vmi["metadata"], vmi.get("spec") or {}
    name, uid = meta["name"], meta["uid"]
    grace = spec.get("terminationGracePeriodSeconds")
    grace = DEFAULT_GRACE_SECONDS if grace is None else int(grace)
    pod_spec: Obj = {
        "containers": [
            {
                "name": "compute",
                "image": LAUNCHER_IMAGE,
                "resources": launcher_requests(spec, cpu_allocation_ratio=cpu_allocation_ratio),
            }
        ],
        "nodeSelector": {**(spec.get("nodeSelector") or {}), SCHEDULABLE_LABEL: "true"},
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": grace + LAUNCHER_GRACE_MARGIN_SECONDS,
        "hostname": spec.get("hostname") or name,
    }
    for field in ("affinity", "tolerations", "priorityClassName", "schedulerName", "topologySpreadConstraints"):
        if spec.get(field):
            pod_spec[field] = spec[field]
    if eviction_toleration_seconds is not None:
        pod_spec["tolerations"] = [*pod_spec.get("tolerations", []), *eviction_tolerations(eviction_toleration_seconds)]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": launcher_pod_name(name, uid),
            "namespace": meta["namespace"],
            "labels": {
                **(meta.get("labels") or {}),
                "kubevirt.io": "virt-launcher",
                "kubevirt.io/created-by": uid,
                "vm.kubevirt.io/name": name,
            },
            "annotations": {"kubevirt.io/domain": name},
            "ownerReferences": [
                {
                    "apiVersion": "kubevirt.io/v1",
                    "kind": "VirtualMachineInstance",
                    "name": name,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": pod_spec,
    }
