"""Simulated virt-handler, next to KubeVirt's real virt-controller and virt-api.

There is no libvirt here, so what virt-handler does on its node is simulated, and only that:
it boots the guest of a VMI that virt-controller scheduled onto a live node (Scheduled -> Running),
reports a guest that died (Running -> Failed) or shut down (-> Succeeded), and kills guests whose
VMI is final, deleted, gone or whose launcher pod is gone. Everything else - launcher pods, VMIs of
VMs, run strategies, backoff, finalizers, the node controller - is KubeVirt's own code.

Writes go through `ctx.handler_client`, authenticated as KubeVirt's `kubevirt-handler` service
account: virt-api's VMI mutator reverts status changes by anyone else.
"""

from __future__ import annotations

from kvha_testbed.kube import VMIS, KubeError, Obj
from kvha_testbed.sim.context import SimContext, now_rfc3339
from kvha_testbed.sim.ledger import vm_key
from kvha_testbed.sim.vm_logic import FINAL_PHASES, deleting
from kvha_testbed.sim.vmi_controller import pods_of, reap_orphaned_guests, requeued_when_stale
from kvha_testbed.sim.vmi_logic import VmiPlan, never_boots, pod_alive, transition


def plan_handler(vmi: Obj, pods: list[Obj], *, node_up: bool, guest_live: bool, now: str) -> VmiPlan:
    """virt-handler's next step for a VMI that is not being deleted, from its pods and its guest."""
    status = vmi.get("status") or {}
    current = status.get("phase") or "Pending"
    node = status.get("nodeName") or ""
    if not node or not node_up:
        return VmiPlan()  # not ours yet, or our node is down with us
    if current in FINAL_PHASES:
        return VmiPlan(stop_guest=f"VMI is {current}: virt-handler killed the domain" if guest_live else None)
    on_node = [p for p in pods if (p.get("spec") or {}).get("nodeName") == node]
    if current == "Scheduled":
        if never_boots(vmi):
            return VmiPlan()  # its guest never starts (NEVER_BOOTS_LABEL): Scheduled, never Ready
        booted = any(
            pod_alive(p) and not deleting(p) and (p.get("status") or {}).get("phase") == "Running" for p in on_node
        )
        return VmiPlan(status=transition(status, "Running", now), start_guest=True) if booted else VmiPlan()
    if current == "Running":
        return _running(status, on_node, guest_live=guest_live, now=now)
    return VmiPlan()


def _running(status: Obj, pods_on_node: list[Obj], *, guest_live: bool, now: str) -> VmiPlan:
    if not any(pod_alive(p) for p in pods_on_node):
        # The launcher is gone (or its containers ended): the domain died with it. virt-controller
        # reports the VMI itself once the pod object is gone.
        return VmiPlan(stop_guest="launcher pod gone: the domain died with it" if guest_live else None)
    if not guest_live:
        return VmiPlan(status={**transition(status, "Failed", now), "reason": "GuestNotRunning"})
    return VmiPlan()


def sync_handler_vmi(ctx: SimContext, namespace: str, name: str) -> None:
    vmi = ctx.caches.vmis.get(namespace, name)
    reap_orphaned_guests(ctx, namespace, name, current_uid=(vmi or {}).get("metadata", {}).get("uid"))
    if vmi is None:
        return
    uid = vmi["metadata"]["uid"]
    node = (vmi.get("status") or {}).get("nodeName") or ""
    node_up = ctx.power.up(node)
    if deleting(vmi):
        if node_up:
            ctx.ledger.stop(uid, reason="VMI deleted: virt-handler shut the domain down")
        return
    instance = ctx.ledger.instance(uid)
    plan = plan_handler(
        vmi,
        pods_of(ctx, vmi),
        node_up=node_up,
        guest_live=instance is not None and instance.live,
        now=now_rfc3339(),
    )
    if plan.status is not None and not write_vmi_status(ctx, vmi, plan.status):
        return
    if plan.start_guest:
        ctx.ledger.start(vm=vm_key(namespace, name), vmi_uid=uid, node=node)
    if plan.stop_guest:
        ctx.ledger.stop(uid, reason=plan.stop_guest)


def write_vmi_status(ctx: SimContext, vmi: Obj, status: Obj) -> bool:
    """Merge `status` into the VMI as virt-handler; False if our copy was stale.

    An update (PUT) of the object we saw, not a patch: KubeVirt's RBAC grants virt-handler
    `update` on VMIs and nothing else, and the resourceVersion makes it safe.
    """
    meta = vmi["metadata"]
    client = ctx.handler_client or ctx.client
    body = {**vmi, "status": {**(vmi.get("status") or {}), **status}}
    try:
        ctx.caches.vmis.observe(client.replace(VMIS.path(meta["namespace"], meta["name"]), body))
    except KubeError as error:
        if requeued_when_stale(ctx, meta, error):
            return False
        raise
    return True
