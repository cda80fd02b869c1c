"""virt-controller's VirtualMachine decisions, as pure functions of (VM, its VMI).

Run strategies (KubeVirt user guide, "Run strategies"; pkg/virt-controller/watch/vm.go):

* Always: no VMI -> create one; a final (Failed or Succeeded) VMI -> delete it, then recreate.
* RerunOnFailure: like Always after Failed; a Succeeded VMI stays (the VM is Stopped).
* Once: create a VMI if there is none; a final VMI stays.
* Manual: only start/stop requests (virtctl start/stop -> status.stateChangeRequests) act.
* Halted: a VMI that exists is deleted.
* Legacy `spec.running: true` means Always, `false` means Halted.

A VM never gets a new VMI while the old one exists: deletion must finish (the VMI's finalizer is
released only once its launcher pod is gone) before "no VMI -> create" can fire.
"""

from __future__ import annotations

import copy
import enum
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

FINAL_PHASES = frozenset({"Succeeded", "Failed"})
VMI_FINALIZER = "foregroundDeleteVirtualMachine"
RUN_STRATEGIES = ("Always", "RerunOnFailure", "Once", "Manual", "Halted")


class VmAction(enum.Enum):
    NONE = "none"
    CREATE_VMI = "create-vmi"
    DELETE_VMI = "delete-vmi"


@dataclass(frozen=True)
class VmDecision:
    action: VmAction
    # How many leading status.stateChangeRequests this decision consumes.
    consumed_requests: int = 0


def run_strategy(vm: Obj) -> str:
    spec = vm.get("spec") or {}
    if spec.get("runStrategy"):
        return str(spec["runStrategy"])
    return "Always" if spec.get("running") is True else "Halted"


def phase(vmi: Obj | None) -> str:
    return ((vmi or {}).get("status") or {}).get("phase") or ""


def deleting(obj: Obj | None) -> bool:
    return bool(obj and (obj.get("metadata") or {}).get("deletionTimestamp"))


def decide(vm: Obj, vmi: Obj | None) -> VmDecision:
    """What virt-controller does next for this VM, given the VMI it owns (or None)."""
    if deleting(vm) or deleting(vmi):
        return VmDecision(VmAction.NONE)  # wait: the old VMI must be gone before anything new
    requests = ((vm.get("status") or {}).get("stateChangeRequests")) or []
    requested = _requested(requests[0].get("action") if requests else None, vmi)
    return requested or VmDecision(_by_strategy(run_strategy(vm), vmi))


def _requested(action: str | None, vmi: Obj | None) -> VmDecision | None:
    """virtctl start/stop: Stop deletes the VMI; Start creates one (after a final one is gone)."""
    if action == "Stop":
        return VmDecision(VmAction.DELETE_VMI) if vmi is not None else VmDecision(VmAction.NONE, 1)
    if action == "Start":
        if vmi is None:
            return VmDecision(VmAction.CREATE_VMI, 1)
        if phase(vmi) in FINAL_PHASES:
            return VmDecision(VmAction.DELETE_VMI)
        return VmDecision(VmAction.NONE, 1)
    return None


# Which final phases make a strategy delete the VMI (so that it is recreated).
_RESTART_AFTER: dict[str, frozenset[str]] = {"Always": FINAL_PHASES, "RerunOnFailure": frozenset({"Failed"})}
_STARTS_WITHOUT_REQUEST = frozenset({"Always", "RerunOnFailure", "Once"})


def _by_strategy(strategy: str, vmi: Obj | None) -> VmAction:
    if vmi is None:
        return VmAction.CREATE_VMI if strategy in _STARTS_WITHOUT_REQUEST else VmAction.NONE
    if strategy == "Halted" or phase(vmi) in _RESTART_AFTER.get(strategy, frozenset()):
        return VmAction.DELETE_VMI
    return VmAction.NONE  # Manual and Once keep what they have


def vmi_for(vm: Obj) -> Obj:
    """The VMI virt-controller creates from a VM: template copied, owned by the VM, finalized."""
    meta = vm["metadata"]
    template = (vm.get("spec") or {}).get("template") or {}
    template_meta = template.get("metadata") or {}
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "labels": dict(template_meta.get("labels") or {}),
            "annotations": dict(template_meta.get("annotations") or {}),
            "ownerReferences": [
                {
                    "apiVersion": "kubevirt.io/v1",
                    "kind": "VirtualMachine",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "finalizers": [VMI_FINALIZER],
        },
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def owned_by(vmi: Obj, vm: Obj) -> bool:
    uid = (vm.get("metadata") or {}).get("uid")
    return any(ref.get("uid") == uid for ref in (vmi.get("metadata") or {}).get("ownerReferences") or [])


def condition(conditions: list[Obj], kind: str) -> Obj | None:
    return next((c for c in conditions if c.get("type") == kind), None)


def unschedulable(vmi: Obj | None) -> bool:
    scheduled = condition(((vmi or {}).get("status") or {}).get("conditions") or [], "PodScheduled") or {}
    return scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable"


def vmi_ready(vmi: Obj | None) -> bool:
    ready = condition(((vmi or {}).get("status") or {}).get("conditions") or [], "Ready")
    return phase(vmi) == "Running" and bool(ready and ready.get("status") == "True")


def printable_status(vm: Obj, vmi: Obj | None) -> str:
    """status.printableStatus, first match wins, in virt-controller's order."""
    if deleting(vm):
        return "Terminating"
    if deleting(vmi):
        return "Stopping"
    if phase(vmi) == "Running":
        return "Running"
    if unschedulable(vmi):
        return "ErrorUnschedulable"
    if vmi is None or phase(vmi) in FINAL_PHASES:
        return "Stopped"
    return "Starting"


def set_condition(
    conditions: list[Obj], *, kind: str, status: str, now: str, reason: str = "", message: str = ""
) -> list[Obj]:
    """Upsert a condition; lastTransitionTime moves only when status or reason changes."""
    old = condition(conditions, kind) or {}
    changed = old.get("status") != status or (old.get("reason") or "") != reason
    # No `lastProbeTime: null`: the API server drops nulls, and the next comparison would differ.
    new: Obj = {"type": kind, "status": status, "lastTransitionTime": now if changed else old.get("lastTransitionTime")}
    if reason:
        new["reason"] = reason
    if message:
        new["message"] = message
    return [*(c for c in conditions if c.get("type") != kind), new]


def vm_status(vm: Obj, vmi: Obj | None, *, now: str) -> Obj:
    """The status fields virt-controller maintains on a VM (the subset the simulator models)."""
    status = vm.get("status") or {}
    ready = vmi_ready(vmi) and not deleting(vmi)
    reason = "" if ready else ("VMINotExists" if vmi is None else "PodNotReady")
    conditions = set_condition(
        list(status.get("conditions") or []), kind="Ready", status="True" if ready else "False", now=now, reason=reason
    )
    if unschedulable(vmi):
        vmi_conditions = ((vmi or {}).get("status") or {}).get("conditions") or []
        scheduled = condition(vmi_conditions, "PodScheduled") or {}
        conditions = set_condition(
            conditions,
            kind="PodScheduled",
            status="False",
            now=now,
            reason="Unschedulable",
            message=scheduled.get("message", ""),
        )
    else:
        conditions = [c for c in conditions if c.get("type") != "PodScheduled"]
    return {
        "created": vmi is not None,
        "ready": ready,
        "printableStatus": printable_status(vm, vmi),
        "runStrategy": run_strategy(vm),
        "conditions": conditions,
    }
