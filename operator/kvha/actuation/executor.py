"""Perform fencing and restart actions. Failures are collected, not raised one by one, so one
bad VM never stops the restart of the others."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kvha.constants import API_VERSION, FAILOVER_ANNOTATION, FAILOVER_NODE_LABEL, FENCE_CONFIRMED_ANNOTATION
from kvha.fencing import (
    ApplyOutOfServiceTaint,
    CreateRemediation,
    DeleteRemediation,
    FenceAction,
    RemoveFenceConfirmation,
    RemoveOutOfServiceTaint,
)
from kvha.k8s.api import Kube, remove_node_annotation_if
from kvha.leadership import LeadershipLost
from kvha.models.names import label_value
from kvha.planner import RestartVM

log = logging.getLogger(__name__)
Action = FenceAction | RestartVM


@dataclass(frozen=True)
class ActionFailed:
    action: Action
    error: str


# Restarts are independent API round trips; one at a time, 50 VMs took 8 s (bench/failover_bench.py).
# The limit stays below the API threads and the client's connection pool (`kvha.k8s.api.API_THREADS`),
# so that status writes and leader renewals never wait behind a burst of restarts.
CONCURRENT_ACTIONS = 16


async def execute(kube: Kube, actions: Iterable[Action]) -> list[ActionFailed]:
    """Fencing actions first and in order; then the restarts concurrently (the core already chose
    which VMs restart now, within maxParallel and tier order)."""
    failures: list[ActionFailed] = []
    limit = asyncio.Semaphore(CONCURRENT_ACTIONS)

    async def attempt(action: Action) -> None:
        async with limit:
            try:
                await _perform(kube, action)
            except LeadershipLost:
                raise  # not a failed action: this replica must stop, not report and carry on
            except Exception as exc:  # one failed call must not stop the others; the core re-issues it
                log.warning("action %s failed: %s", action, exc)
                failures.append(ActionFailed(action, str(exc)))

    pending = list(actions)
    for action in [a for a in pending if not isinstance(a, RestartVM)]:
        await attempt(action)
    await asyncio.gather(*(attempt(a) for a in pending if isinstance(a, RestartVM)))
    return failures


async def _perform(kube: Kube, action: Action) -> None:
    match action:
        case ApplyOutOfServiceTaint(node=node):
            await kube.set_out_of_service_taint(node, present=True)
        case RemoveOutOfServiceTaint(node=node):
            await kube.set_out_of_service_taint(node, present=False)
        case RemoveFenceConfirmation(node=node, value=value):
            await remove_node_annotation_if(kube, node, FENCE_CONFIRMED_ANNOTATION, value)
        case CreateRemediation():
            await _create_remediation(kube, action)
        case DeleteRemediation(name=name, template=template, uid=uid):
            await kube.delete_object(
                api_version=template.api_version,
                plural=await kube.plural(api_version=template.api_version, kind=template.remediation_kind),
                name=name,
                namespace=template.namespace,
                uid=uid,
            )
        case RestartVM():
            await _restart(kube, action)


async def _create_remediation(kube: Kube, action: CreateRemediation) -> None:
    """Create the remediation object from the template's spec.template, named after the node
    (the medik8s convention that remediators rely on), owned by the incident's NodeFailover: the
    ownerReference is what lets a later step trust its verdict (and deleting the NodeFailover
    removes it with it)."""
    template = action.template
    source = await kube.get_object(
        api_version=template.api_version,
        plural=await kube.plural(api_version=template.api_version, kind=template.kind),
        name=template.name,
        namespace=template.namespace,
    )
    if source is None:
        raise RuntimeError(f"remediation template {template.kind} {template.namespace}/{template.name} not found")
    spec: dict[str, Any] = ((source.get("spec") or {}).get("template") or {}).get("spec") or {}
    kind = template.remediation_kind
    body = {
        "apiVersion": template.api_version,
        "kind": kind,
        "metadata": {
            "name": action.name,
            "namespace": template.namespace,
            "labels": {FAILOVER_NODE_LABEL: label_value(action.node)},
            "annotations": {FAILOVER_ANNOTATION: action.owner.name, "remediation.medik8s.io/node-name": action.node},
            "ownerReferences": [
                {"apiVersion": API_VERSION, "kind": "NodeFailover", "name": action.owner.name, "uid": action.owner.uid}
            ],
        },
        "spec": spec,
    }
    plural = await kube.plural(api_version=template.api_version, kind=kind)
    created = await kube.create_object(
        api_version=template.api_version, plural=plural, body=body, namespace=template.namespace
    )
    if not created:
        # Not success: it may be node-healthcheck-operator's. The next step reads it and trusts it
        # only if its ownerReference is this incident (a retry after a lost response finds ours).
        raise RuntimeError(f"{kind} {template.namespace}/{action.name} already exists")


async def _restart(kube: Kube, action: RestartVM) -> None:
    """Force-delete the stuck launcher pod (its fenced node's kubelet will never confirm): that is
    the restart. virt-controller fails a VMI the moment its pod is gone, whatever the node's state
    (watch/vmi/lifecycle.go), and the VM controller creates a new VMI, which the scheduler places on
    a healthy node. Writing the VMI's status would change nothing: virt-api reverts VMI status
    changes by anyone but KubeVirt's own service accounts (pinned in the testbed's tests)."""
    for pod in action.launcher_pods:
        await kube.force_delete_pod(action.namespace, pod)
