"""Which VMs a policy protects, at what priority, and why the others cannot be protected.

A pure function of the VM, the policy and the namespace's labels (which bound the priority a
namespace may claim: `restart.priorityLimits`). Users see its answers as the
policy's protected/unprotectable counts, as Events on VMs, and as Skipped reasons in failovers, so
the reasons are stable, CamelCase, and explained in the message.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kvha.constants import PRIORITY_ANNOTATION, UNSAFE_RESTART_ANNOTATION
from kvha.models.base import Priority
from kvha.models.hapolicy import HAPolicySpec, PriorityLimit
from kvha.models.views import ClaimView, VMView


class Unprotectable(enum.StrEnum):
    RUN_STRATEGY_MANUAL = "RunStrategyManual"
    RUN_STRATEGY_HALTED = "RunStrategyHalted"
    RUN_STRATEGY_ONCE = "RunStrategyOnce"
    LOCAL_DISK = "LocalDisk"
    HOST_DEVICES = "HostDevices"
    PRIORITY_DISABLED = "PriorityDisabled"
    INVALID_PRIORITY = "InvalidPriorityAnnotation"


_MESSAGES = {
    Unprotectable.RUN_STRATEGY_MANUAL: (
        "runStrategy Manual: KubeVirt never restarts it by itself, so kvha cannot either"
    ),
    Unprotectable.RUN_STRATEGY_HALTED: "runStrategy Halted: the VM is meant to be stopped",
    Unprotectable.RUN_STRATEGY_ONCE: "runStrategy Once: the VM must not run a second time",
    Unprotectable.LOCAL_DISK: "uses a hostDisk volume, which exists only on its current node",
    Unprotectable.HOST_DEVICES: "uses host devices or GPUs passed through from its current node",
    Unprotectable.PRIORITY_DISABLED: f"restart priority is Disabled ({PRIORITY_ANNOTATION} or the policy default)",
}


@dataclass(frozen=True, slots=True)
class Protection:
    protected: bool
    priority: Priority
    reason: Unprotectable | None = None
    message: str = ""
    claimed: Priority | None = None
    """The higher priority the VM asked for, when a priority limit of its namespace lowered it."""


def vm_priority(vm: VMView, default: Priority) -> Priority:
    """The VM's annotation overrides the policy default; raises ValueError for a bad value."""
    value = vm.annotations.get(PRIORITY_ANNOTATION)
    return default if value is None else Priority.parse(value)


def priority_limit(limits: Sequence[PriorityLimit], namespace_labels: Mapping[str, str]) -> Priority | None:
    """The highest priority a VM of a namespace with these labels may have (`restart.priorityLimits`):
    the first matching limit's, or None without one."""
    for limit in limits:
        if limit.namespace_selector.matches(dict(namespace_labels)):
            return limit.max_priority
    return None


def classify(vm: VMView, *, default_priority: Priority, limit: Priority | None = None) -> Protection:
    """`limit` (`priority_limit`) caps whatever the VM claims; Disabled stays Disabled."""
    try:
        priority = vm_priority(vm, default_priority)
    except ValueError as exc:
        return Protection(False, default_priority, Unprotectable.INVALID_PRIORITY, str(exc))
    claimed = None
    if limit is not None and priority > limit:
        claimed, priority = priority, limit
    reason: Unprotectable | None = None
    if vm.run_strategy == "Manual":
        reason = Unprotectable.RUN_STRATEGY_MANUAL
    elif vm.run_strategy == "Halted":
        reason = Unprotectable.RUN_STRATEGY_HALTED
    elif vm.run_strategy == "Once":
        reason = Unprotectable.RUN_STRATEGY_ONCE
    elif vm.host_disks:
        reason = Unprotectable.LOCAL_DISK
    elif vm.host_devices:
        reason = Unprotectable.HOST_DEVICES
    elif priority is Priority.DISABLED:
        reason = Unprotectable.PRIORITY_DISABLED
    if reason is not None:
        return Protection(False, priority, reason, _MESSAGES[reason], claimed)
    return Protection(True, priority, claimed=claimed)


def selects(policy: HAPolicySpec, vm: VMView, namespace_labels: Mapping[str, str]) -> bool:
    return policy.vm_selector.matches(vm.labels) and policy.namespace_selector.matches(dict(namespace_labels))


def unfenced_safe(vm: VMView, claims: Mapping[tuple[str, str], ClaimView]) -> bool:
    """Whether two instances of this VM could run at once without corrupting anything.

    Only VMs whose volumes are all shareable (no ReadWriteOnce, no block volumes; unknown claims
    count as unsafe) qualify, or VMs whose owner opted in with an annotation.
    """
    if vm.annotations.get(UNSAFE_RESTART_ANNOTATION) == "true":
        return True
    if vm.host_disks:
        return False
    for claim_name in vm.claim_names:
        claim = claims.get((vm.namespace, claim_name))
        if claim is None or claim.single_writer:
            return False
    return True
