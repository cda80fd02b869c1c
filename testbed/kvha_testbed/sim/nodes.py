"""Simulated virt-handler heartbeats and virt-controller's node controller.

virt-handler (a DaemonSet pod on every node) stamps `kubevirt.io/heartbeat` on its Node and keeps
`kubevirt.io/schedulable=true`; launcher pods select on that label. It stops when its node is
powered off or partitioned. virt-controller's node controller (pkg/virt-controller/watch/node.go)
calls a node unresponsive once the heartbeat is older than its timeout, then sets the label to
"false" and fails every VMI on the node whose launcher pod is gone (reason NodeUnresponsive). A VMI
whose pod is merely Terminating there stays Running: KubeVirt cannot know whether the guest runs.
"""

from __future__ import annotations

import random
import threading
import time

from kvha_testbed.kube import NODES, PODS, VMIS, KubeError, Obj
from kvha_testbed.kwok import MANAGED_LABEL
from kvha_testbed.sim.context import SimContext, now_rfc3339, parse_rfc3339
from kvha_testbed.sim.launcher import SCHEDULABLE_LABEL, launcher_pod_name
from kvha_testbed.sim.vm_logic import FINAL_PHASES, deleting, set_condition
from kvha_testbed.sim.vmi_logic import pod_alive, transition

HEARTBEAT_ANNOTATION = "kubevirt.io/heartbeat"
# virt-handler's node labeller reports the machine types the host's QEMU supports; launcher pods
# of q35 VMs (the default) select on it.
Q35_LABEL = "machine-type.node.kubevirt.io/q35"
NODE_UNRESPONSIVE = "NodeUnresponsive"
TICK = 0.5


def node_unresponsive(node: Obj | None, *, now: float, timeout: float) -> bool:
    """KubeVirt's isNodeUnresponsive: a missing node is; a node that never beat is not."""
    if node is None:
        return True
    stamp = ((node.get("metadata") or {}).get("annotations") or {}).get(HEARTBEAT_ANNOTATION)
    if not stamp:
        return False
    return parse_rfc3339(stamp) < now - timeout


def kwok_managed(node: Obj) -> bool:
    return ((node.get("metadata") or {}).get("labels") or {}).get(MANAGED_LABEL) == "true"


class NodeAgents:
    """One ticker thread that queues heartbeats and node checks; the workers run them."""

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._next_beat: dict[str, float] = {}
        self._last_check: dict[str, float] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-node-ticker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def beat_now(self, node: str) -> None:
        """Queue an immediate heartbeat (a node just came up)."""
        with self._lock:
            self._next_beat.pop(node, None)
        self.ctx.queue.add(("heartbeat", node))

    def _run(self) -> None:
        while not self._stopping.wait(TICK):
            self.tick(time.monotonic())

    def tick(self, now: float) -> None:
        config, queue = self.ctx.config, self.ctx.queue
        names = {n["metadata"]["name"] for n in self.ctx.caches.nodes.items()}
        # VMIs may point at nodes that were deleted; those are unresponsive by definition.
        names |= {(v.get("status") or {}).get("nodeName") or "" for v in self.ctx.caches.vmis.items()} - {""}
        with self._lock:
            for name in names:
                if now >= self._next_beat.get(name, -1e9):
                    jitter = random.uniform(0.0, config.heartbeat_jitter)  # noqa: S311 - timing, not security
                    self._next_beat[name] = now + config.heartbeat_interval * (1.0 + jitter)
                    queue.add(("heartbeat", name))
                if now - self._last_check.get(name, -1e9) >= config.node_recheck_interval:
                    self._last_check[name] = now
                    queue.add(("node", name))

    # ----------------------------------------------------------------------------- virt-handler

    def heartbeat(self, name: str) -> None:
        node = self.ctx.caches.nodes.get("", name)
        if node is None or not kwok_managed(node) or not self.ctx.power.up(name):
            return  # no node, or its virt-handler is down with it
        try:
            (self.ctx.handler_client or self.ctx.client).patch(
                NODES.path(name=name),
                {
                    "metadata": {
                        "annotations": {HEARTBEAT_ANNOTATION: now_rfc3339()},
                        "labels": {SCHEDULABLE_LABEL: "true", Q35_LABEL: "true"},
                    }
                },
            )
        except KubeError as error:
            if not error.not_found:
                raise

    # ----------------------------------------------------------------------------- virt-controller

    def check(self, name: str) -> None:
        ctx = self.ctx
        node = ctx.caches.nodes.get("", name)
        if not node_unresponsive(node, now=time.time(), timeout=ctx.config.heartbeat_timeout):
            return
        if node is not None and (node["metadata"].get("labels") or {}).get(SCHEDULABLE_LABEL) == "true":
            try:
                ctx.client.patch(NODES.path(name=name), {"metadata": {"labels": {SCHEDULABLE_LABEL: "false"}}})
            except KubeError as error:
                if not error.not_found:
                    raise
        for vmi in ctx.caches.vmis.by_index("node", name):
            if deleting(vmi) or (vmi.get("status") or {}).get("phase") in FINAL_PHASES:
                continue
            if not self._has_alive_pod(vmi):
                self._fail_unresponsive(vmi)

    def _has_alive_pod(self, vmi: Obj) -> bool:
        meta = vmi["metadata"]
        pods = self.ctx.caches.pods.by_index("vmi", meta["uid"])
        if not pods:  # confirm against the API: the cache may lag
            found = self.ctx.client.get_or_none(
                PODS.path(meta["namespace"], launcher_pod_name(meta["name"], meta["uid"]))
            )
            pods = [found] if found else []
        return any(pod_alive(p) for p in pods)

    def _fail_unresponsive(self, vmi: Obj) -> None:
        meta, status = vmi["metadata"], vmi.get("status") or {}
        now = now_rfc3339()
        conditions = set_condition(
            list(status.get("conditions") or []), kind="Ready", status="False", now=now, reason=NODE_UNRESPONSIVE
        )
        body = {
            "metadata": {"resourceVersion": meta["resourceVersion"]},
            "status": {**transition(status, "Failed", now), "reason": NODE_UNRESPONSIVE, "conditions": conditions},
        }
        path = VMIS.path(meta["namespace"], meta["name"])
        if self.ctx.vmi_status_subresource:
            path += "/status"
        try:
            self.ctx.client.patch(path, body)
        except KubeError as error:
            if not (error.conflict or error.not_found):
                raise
