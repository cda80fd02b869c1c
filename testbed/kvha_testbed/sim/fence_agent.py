"""A simulated medik8s fence agent: remediation CR in, node powered off, Succeeded out.

kvha's Remediation strategy delegates fencing to medik8s remediators (Self Node Remediation, Fence
Agents Remediation). Both take a namespaced CR named after the node; they report progress with
`Processing` and `Succeeded` conditions. This agent watches both kinds and, after `fence_delay`,
powers the node off in the simulator (its guests die in the ledger), applies the CR's
`remediationStrategy` the way medik8s does, and reports `Processing=False, Succeeded=True`.

`fail(node)` makes fencing of a node fail (`Succeeded=False`), for testing kvha's error path.
Deleting the CR removes the out-of-service taint the agent added; the node stays off until a test
revives it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from kvha_testbed.kube import (
    FENCE_AGENTS_REMEDIATIONS,
    NODES,
    PODS,
    SELF_NODE_REMEDIATIONS,
    KubeError,
    Obj,
    Resource,
)
from kvha_testbed.sim.context import SimContext, now_rfc3339
from kvha_testbed.sim.informer import Informer
from kvha_testbed.sim.vm_logic import condition, deleting, set_condition

OUT_OF_SERVICE_TAINT = {"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}
KINDS: dict[str, Resource] = {r.plural: r for r in (SELF_NODE_REMEDIATIONS, FENCE_AGENTS_REMEDIATIONS)}


@dataclass(frozen=True)
class FenceRecord:
    kind: str
    namespace: str
    name: str
    node: str
    succeeded: bool
    at: float


class FenceAgent:
    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self.power_off: Callable[[str], object] | None = None  # wired to Faults.power_off by the testbed
        self.records: list[FenceRecord] = []
        self._lock = threading.Lock()
        self._first_seen: dict[str, float] = {}
        self._failing: set[str] = set()
        self._tainted: set[str] = set()
        self.informers = {
            plural: Informer(ctx.client, resource, name=plural, on_change=partial(self._enqueue, plural))
            for plural, resource in KINDS.items()
        }

    def start(self) -> None:
        for informer in self.informers.values():
            informer.start()
        for informer in self.informers.values():
            informer.wait_synced()

    def stop(self) -> None:
        for informer in self.informers.values():
            informer.stop()

    def fail(self, node: str, failing: bool = True) -> None:
        """Make fencing `node` fail (or succeed again)."""
        with self._lock:
            (self._failing.add if failing else self._failing.discard)(node)

    def fenced_nodes(self) -> list[str]:
        with self._lock:
            return [r.node for r in self.records if r.succeeded]

    def _enqueue(self, plural: str, _kind: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old or {}
        meta = obj.get("metadata") or {}
        self.ctx.queue.add(("remediation", plural, meta.get("namespace", ""), meta.get("name", "")))

    def sync(self, plural: str, namespace: str, name: str) -> None:
        resource = KINDS[plural]
        obj = self.informers[plural].get(namespace, name)
        if obj is None or deleting(obj):
            self._release(name)
            return
        conditions = (obj.get("status") or {}).get("conditions") or []
        if (condition(conditions, "Succeeded") or {}).get("status") in ("True", "False"):
            return  # already reported
        key = f"{plural}/{namespace}/{name}/{obj['metadata']['uid']}"
        now = time.monotonic()
        with self._lock:
            first = self._first_seen.get(key)
            if first is None:
                first = self._first_seen[key] = now
                announce = True
            else:
                announce = False
        if announce:
            self._report(resource, obj, processing=True, succeeded=None)
        remaining = first + self.ctx.config.fence_delay - now
        if remaining > 0:
            self.ctx.queue.add_after(("remediation", plural, namespace, name), remaining)
            return
        with self._lock:
            failing = name in self._failing
        if not failing:
            self._fence(name, strategy=(obj.get("spec") or {}).get("remediationStrategy") or "")
        self._report(resource, obj, processing=False, succeeded=not failing)
        with self._lock:
            self.records.append(
                FenceRecord(
                    kind=resource.plural,
                    namespace=namespace,
                    name=name,
                    node=name,
                    succeeded=not failing,
                    at=time.time(),
                )
            )

    def _fence(self, node: str, *, strategy: str) -> None:
        if self.power_off is None:
            raise RuntimeError("fence agent has no power switch: call KubeVirtSimulator.attach_fencer")
        self.power_off(node)
        if strategy == "OutOfServiceTaint":
            self._set_taint(node, present=True)
        elif strategy == "ResourceDeletion":
            pods, _ = self.ctx.client.list(PODS.path(), field_selector=f"spec.nodeName={node}")
            for pod in pods:
                self.ctx.client.delete(
                    PODS.path(pod["metadata"]["namespace"], pod["metadata"]["name"]), grace_seconds=0
                )

    def _release(self, node: str) -> None:
        with self._lock:
            tainted = node in self._tainted
        if tainted:
            self._set_taint(node, present=False)

    def _set_taint(self, node: str, *, present: bool) -> None:
        current = self.ctx.client.get_or_none(NODES.path(name=node))
        if current is None:
            return
        taints = [
            t for t in (current.get("spec") or {}).get("taints") or [] if t.get("key") != OUT_OF_SERVICE_TAINT["key"]
        ]
        if present:
            taints.append(dict(OUT_OF_SERVICE_TAINT))
        self.ctx.client.patch(
            NODES.path(name=node),
            {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}, "spec": {"taints": taints}},
        )
        with self._lock:
            (self._tainted.add if present else self._tainted.discard)(node)

    def _report(self, resource: Resource, obj: Obj, *, processing: bool, succeeded: bool | None) -> None:
        now = now_rfc3339()
        conditions = list((obj.get("status") or {}).get("conditions") or [])
        conditions = set_condition(
            conditions,
            kind="Processing",
            status=str(processing),
            now=now,
            reason="RemediationStarted" if processing else "RemediationFinished",
        )
        outcome = "Unknown" if succeeded is None else str(succeeded)
        reason = {
            "Unknown": "RemediationStarted",
            "True": "RemediationFinishedSuccessfully",
            "False": "FenceAgentFailed",
        }[outcome]
        kinds = ["Succeeded"]
        if resource is FENCE_AGENTS_REMEDIATIONS:
            kinds.append("FenceAgentActionSucceeded")
        for kind in kinds:
            conditions = set_condition(conditions, kind=kind, status=outcome, now=now, reason=reason)
        for c in conditions:
            c.setdefault("reason", "Unknown")
            c.setdefault("message", "")
        meta = obj["metadata"]
        try:
            self.ctx.client.patch(
                resource.path(meta["namespace"], meta["name"], "status"), {"status": {"conditions": conditions}}
            )
        except KubeError as error:
            if not error.not_found:
                raise
