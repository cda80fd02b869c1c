"""Simulated virt-controller, VirtualMachine side: act on vm_logic's decision and write VM status."""

from __future__ import annotations

from kvha_testbed.kube import VMIS, VMS, KubeError, Obj
from kvha_testbed.sim.context import SimContext, now_rfc3339
from kvha_testbed.sim.vm_logic import VmAction, decide, owned_by, vm_status, vmi_for

RETRY_AFTER_CONFLICT = 0.2


def sync_vm(ctx: SimContext, namespace: str, name: str) -> None:
    vm = ctx.caches.vms.get(namespace, name)
    if vm is None:
        return  # the garbage collector removes its VMI through the owner reference
    vmi = ctx.caches.vmis.get(namespace, name)
    if vmi is not None and not owned_by(vmi, vm):
        vmi_owned: Obj | None = None
        foreign = True  # a VMI of a previous VM with this name is still going away
    else:
        vmi_owned, foreign = vmi, False
    decision = decide(vm, vmi_owned)
    if decision.action is VmAction.CREATE_VMI and not foreign:
        try:
            ctx.caches.vmis.observe(ctx.client.create(VMIS.path(namespace), vmi_for(vm)))
        except KubeError as error:
            if not error.conflict:  # 409: it exists and our cache has not seen it yet
                raise
        if not decision.consumed_requests:
            return  # the new VMI's events bring the VM back here to write its status once
    elif decision.action is VmAction.DELETE_VMI and vmi_owned is not None:
        uid = vmi_owned["metadata"]["uid"]
        ctx.client.delete(VMIS.path(namespace, name), uid=uid, propagation="Background")
    _write_status(ctx, vm, vmi_owned, consumed_requests=decision.consumed_requests)


def _write_status(ctx: SimContext, vm: Obj, vmi: Obj | None, *, consumed_requests: int) -> None:
    current = vm.get("status") or {}
    desired = vm_status(vm, vmi, now=now_rfc3339())
    changed = {k: v for k, v in desired.items() if current.get(k) != v}
    if consumed_requests:
        remaining = (current.get("stateChangeRequests") or [])[consumed_requests:]
        changed["stateChangeRequests"] = remaining or None
    if not changed:
        return
    meta = vm["metadata"]
    body = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": changed}
    subresource = "status" if ctx.vm_status_subresource else None
    try:
        ctx.caches.vms.observe(ctx.client.patch(VMS.path(meta["namespace"], meta["name"], subresource), body))
    except KubeError as error:
        if error.conflict:
            # Our cache was stale; the newer version's watch event re-queues this VM.
            ctx.queue.add_after(("vm", meta["namespace"], meta["name"]), RETRY_AFTER_CONFLICT)
            return
        if not error.not_found:
            raise
