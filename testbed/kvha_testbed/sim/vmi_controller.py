"""Simulated virt-controller + virt-handler, VMI side: launcher pods, phases, guests, finalizer.

Deletion follows KubeVirt: a deleted VMI keeps its finalizer while its launcher pod exists; the
controller deletes the pod (gracefully) and releases the finalizer only when the pod is gone. On a
dead node the pod stays Terminating, so the VMI - and the VM's restart - wait until someone
force-deletes the pod. That wait is what kvha resolves, after fencing.
"""

from __future__ import annotations

from kvha_testbed.kube import JSON_PATCH, PODS, VMIS, KubeError, Obj
from kvha_testbed.sim.context import SimContext, now_rfc3339
from kvha_testbed.sim.launcher import launcher_pod, launcher_pod_name
from kvha_testbed.sim.ledger import vm_key
from kvha_testbed.sim.vm_logic import VMI_FINALIZER, deleting
from kvha_testbed.sim.vmi_logic import POD_PHASES, plan_vmi

CREATED_BY = "kubevirt.io/created-by"
RETRY_AFTER_CONFLICT = 0.2


def sync_vmi(ctx: SimContext, namespace: str, name: str) -> None:
    vmi = ctx.caches.vmis.get(namespace, name)
    reap_orphaned_guests(ctx, namespace, name, current_uid=(vmi or {}).get("metadata", {}).get("uid"))
    if vmi is None:
        return
    if deleting(vmi):
        _finish_deletion(ctx, vmi)
        return
    uid = vmi["metadata"]["uid"]
    node = (vmi.get("status") or {}).get("nodeName") or ""
    pods = pods_of(ctx, vmi)
    plan = plan_vmi(
        vmi, pods, node_up=ctx.power.up(node) if node else True, guest_live=_live(ctx, uid), now=now_rfc3339()
    )
    if plan.create_pod:
        try:
            ctx.caches.pods.observe(
                ctx.client.create(
                    PODS.path(namespace),
                    launcher_pod(
                        vmi,
                        cpu_allocation_ratio=ctx.config.cpu_allocation_ratio,
                        eviction_toleration_seconds=ctx.config.eviction_toleration_seconds,
                    ),
                )
            )
        except KubeError as error:
            if not error.conflict:
                raise
    labels = {k: v for k, v in plan.labels.items() if (vmi["metadata"].get("labels") or {}).get(k) != v}
    if (plan.status is not None or labels) and not _patch_vmi(ctx, vmi, status=plan.status or {}, labels=labels):
        return
    if plan.start_guest:
        pod_node = next((p["spec"].get("nodeName") for p in pods if p["spec"].get("nodeName")), node)
        ctx.ledger.start(vm=vm_key(namespace, name), vmi_uid=uid, node=pod_node)
    if plan.stop_guest:
        ctx.ledger.stop(uid, reason=plan.stop_guest)


def _live(ctx: SimContext, uid: str) -> bool:
    instance = ctx.ledger.instance(uid)
    return instance is not None and instance.live


def pods_of(ctx: SimContext, vmi: Obj) -> list[Obj]:
    """Launcher pods of this VMI; an empty cache answer is double-checked against the API.

    The cache may lag our own pod create by a few milliseconds; mistaking that for "the pod
    vanished" would fail a healthy VMI.
    """
    uid = vmi["metadata"]["uid"]
    pods = ctx.caches.pods.by_index("vmi", uid)
    phase = (vmi.get("status") or {}).get("phase") or ""
    if pods or phase not in POD_PHASES:
        return pods
    found = ctx.client.get_or_none(
        PODS.path(vmi["metadata"]["namespace"], launcher_pod_name(vmi["metadata"]["name"], uid))
    )
    return [found] if found else []


def _patch_vmi(ctx: SimContext, vmi: Obj, *, status: Obj, labels: dict[str, str]) -> bool:
    """Merge-patch status (and labels) guarded by resourceVersion; False if our view was stale.

    VMIs have no status subresource in KubeVirt, so status is written through the main resource
    unless the installed CRD says otherwise.
    """
    meta = vmi["metadata"]
    path = VMIS.path(meta["namespace"], meta["name"])
    guard = {"resourceVersion": meta["resourceVersion"]}
    try:
        if ctx.vmi_status_subresource:
            if status:
                ctx.caches.vmis.observe(ctx.client.patch(path + "/status", {"metadata": guard, "status": status}))
            if labels:
                ctx.caches.vmis.observe(ctx.client.patch(path, {"metadata": {"labels": labels}}))
        else:
            metadata: Obj = {**guard, "labels": labels} if labels else guard
            ctx.caches.vmis.observe(ctx.client.patch(path, {"metadata": metadata, "status": status}))
    except KubeError as error:
        if requeued_when_stale(ctx, meta, error):
            return False
        raise
    return True


def requeued_when_stale(ctx: SimContext, meta: Obj, error: KubeError) -> bool:
    """A VMI write lost to a newer version (409) or a deletion (404): look again shortly. True if so."""
    if error.conflict or error.not_found:
        ctx.queue.add_after(("vmi", meta["namespace"], meta["name"]), RETRY_AFTER_CONFLICT)
        return True
    return False


def _finish_deletion(ctx: SimContext, vmi: Obj) -> None:
    meta = vmi["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    node = (vmi.get("status") or {}).get("nodeName") or ""
    if node and ctx.power.up(node):
        ctx.ledger.stop(uid, reason="VMI deleted: virt-handler shut the domain down")
    pods, _ = ctx.client.list(PODS.path(namespace), label_selector=f"{CREATED_BY}={uid}")
    for pod in pods:
        if not deleting(pod):
            ctx.client.delete(PODS.path(namespace, pod["metadata"]["name"]), uid=pod["metadata"]["uid"])
    if pods:
        return  # the pod's disappearance re-queues this VMI
    finalizers = meta.get("finalizers") or []
    if VMI_FINALIZER not in finalizers:
        return
    index = finalizers.index(VMI_FINALIZER)
    try:
        ctx.client.patch(
            VMIS.path(namespace, name),
            [
                {"op": "test", "path": f"/metadata/finalizers/{index}", "value": VMI_FINALIZER},
                {"op": "remove", "path": f"/metadata/finalizers/{index}"},
            ],
            content_type=JSON_PATCH,
        )
    except KubeError as error:
        if error.status in (404, 409, 422):
            return  # gone already, or finalizers changed under us: the next event re-queues
        raise


def reap_orphaned_guests(ctx: SimContext, namespace: str, name: str, *, current_uid: str | None) -> None:
    """Guests of this VM whose VMI no longer exists die if their node is up (virt-handler cleans up).

    On a partitioned node they keep running: that is the split-brain hazard the ledger watches.
    """
    for instance in ctx.ledger.live_instances(vm_key(namespace, name)):
        if instance.vmi_uid != current_uid and ctx.power.up(instance.node):
            ctx.ledger.stop(instance.vmi_uid, reason="VMI gone: virt-handler removed the orphaned domain")
