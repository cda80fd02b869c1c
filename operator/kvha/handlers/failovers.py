"""NodeFailover: drive one incident, step by step, until it is finished.

A kopf daemon per unfinished NodeFailover runs a step when something it reads changed or when the
step's own `recheck_after` is due (`kvha.handlers.rhythm`), at most one per `failover_interval`.
Each step: snapshot from the indices (plus one GET of the remediation object while fencing by
remediation), one pure step of `kvha.reconcile.advance_incident`, status written *before* the
actions run (write-ahead: a crash between the two repeats an idempotent action, never loses one),
then the actions, Events and metrics.

Deleting a NodeFailover by hand ends its incident: `release_failover` undoes what it put on the node
(`kvha.reconcile.release_incident`) and kopf keeps kvha's finalizer until that is done.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any

import kopf

from kvha import metrics
from kvha.actuation import execute
from kvha.constants import FAILOVER_NODE_LABEL, GROUP, VERSION
from kvha.detection import recorded_storm
from kvha.fencing import OBSERVE_INTERVAL, RemediationObservation
from kvha.handlers import events
from kvha.handlers.freshness import SIGHTINGS, clock, read_fresh
from kvha.handlers.rhythm import CLOSE_WATCH, DETECTION, WORKLOAD, mark, pause
from kvha.handlers.snapshot import POLICIES, Indices, Unique, by_key, first, values
from kvha.k8s.api import Kube
from kvha.leadership import LeadershipLost
from kvha.models.hapolicy import FencingStrategy, HAPolicySpec, HAPolicyStatus
from kvha.models.names import label_value
from kvha.models.nodefailover import NodeFailoverSpec, NodeFailoverStatus
from kvha.placement import PodTopology, node_capacities
from kvha.protection import unfenced_safe
from kvha.reconcile import (
    IncidentSnapshot,
    IncidentStep,
    ReleaseSnapshot,
    advance_incident,
    fences,
    fresh_read_agrees,
    healthy_nodes,
    incident_policy,
    incident_vms,
    release_incident,
)
from kvha.settings import OperatorSettings

log = logging.getLogger(__name__)

RETRY_SOON = 1.0
"""Seconds before a step that the API's fresh read contradicted decides again (the cache lags)."""
ERROR_BACKOFF = 5.0
"""Seconds before a step that raised is tried again."""
STOP_GRACE = 10.0
"""Seconds kopf lets a stopping daemon finish its step before cancelling it."""
DELIVERY_WAIT = 2.0
"""Seconds a step waits for its own status write to come back through kopf's watch: the next step
must compute from it (one computed from the copy before would only meet a conflict)."""


def _unfinished(status: kopf.Status, **_: Any) -> bool:
    return not status.get("finished", False)


@dataclass(frozen=True)
class Stepped:
    """What one step of an incident leaves for the daemon: when to look again, and whether done."""

    recheck_after: float | None
    finished: bool = False
    written: bool = False
    """The status was written: the next step waits until kopf's copy shows the write."""


@kopf.daemon(GROUP, VERSION, "nodefailovers", when=_unfinished, cancellation_backoff=STOP_GRACE)
async def drive_failover(
    *,
    name: str,
    body: kopf.Body,
    spec: kopf.Spec,
    status: kopf.Status,
    memo: Any,
    stopped: kopf.DaemonStopped,
    **kwargs: Any,
) -> None:
    settings: OperatorSettings = memo.settings
    signals = (DETECTION, WORKLOAD)
    owner = f"NodeFailover/{name}"
    # The incident's node: its Lease renewals are the recovery (or the flapping) this incident judges.
    CLOSE_WATCH.set(owner, {str(spec.get("nodeName", ""))})
    try:
        while not stopped:
            since = mark(signals)
            computed_from = str(body["metadata"]["resourceVersion"])
            try:
                stepped = await advance(name=name, body=body, spec=spec, status=status, memo=memo)
            except LeadershipLost:
                raise
            except Exception:  # one failing step must not end the incident: kopf would back off for a minute
                log.exception("NodeFailover %s: the step failed; trying again in %ss", name, ERROR_BACKOFF)
                stepped = Stepped(recheck_after=ERROR_BACKOFF)
            if stepped.finished:
                return
            if stepped.written:
                await _delivered(body, computed_from, stopped)
            await pause(
                signals,
                since,
                recheck_after=stepped.recheck_after,
                min_interval=settings.failover_interval,
                stopped=stopped,
            )
    finally:
        CLOSE_WATCH.set(owner, ())


async def _delivered(body: kopf.Body, computed_from: str, stopped: kopf.DaemonStopped) -> None:
    """Until kopf's live body carries a newer resourceVersion than the step computed from."""
    deadline = asyncio.get_running_loop().time() + DELIVERY_WAIT
    while str(body["metadata"]["resourceVersion"]) == computed_from and not stopped:
        if asyncio.get_running_loop().time() >= deadline:
            return
        await asyncio.sleep(0.05)


async def advance(*, name: str, body: kopf.Body, spec: kopf.Spec, status: kopf.Status, memo: Any) -> Stepped:
    """One step of the incident: decide from the indices, write status, then act."""
    kube: Kube = memo.kube
    ix = Indices.current()
    now = clock()
    failover_spec, current, computed_from, observed = _parsed(body, spec, status)
    record = first(ix.policies, failover_spec.policy_name)
    live_policy = POLICIES.parse(failover_spec.policy_name, record) if record else None
    policy = incident_policy(current, live_policy)  # the copy the incident recorded when it opened
    policy_status = HAPolicyStatus.model_validate(record["status"]) if record and record["status"] else HAPolicyStatus()
    node_name = failover_spec.node_name
    nodes = list(values(ix.nodes))
    leases = Unique(ix.leases)
    pods = list(values(ix.pods_by_node))
    namespaces = by_key(ix.namespaces)
    vms = incident_vms(status=current, policy=policy, vms=values(ix.vms), namespace_labels=namespaces)
    claims = by_key(ix.claims)
    sightings = {n.name: SIGHTINGS.of(n.name) for n in nodes}
    healthy = healthy_nodes(nodes=nodes, leases=leases, sightings=sightings, policy=policy, now=now) if policy else []
    snapshot = IncidentSnapshot(
        name=name,
        uid=str(body["metadata"]["uid"]),
        spec=failover_spec,
        status=current,
        policy=live_policy,
        node=first(ix.nodes, node_name),
        lease=leases.get(node_name),
        all_nodes=nodes,
        leases=leases,
        recorded_storm=recorded_storm(policy_status),
        remediation=await _remediation(kube, policy, current, node_name),
        pods_on_node=list(ix.pods_by_node.get(node_name, [])),
        vms=vms,
        vmis=Unique(ix.vmis),
        launcher_pods=ix.launchers,
        nodes=node_capacities(nodes=healthy, pods=pods, exclude={node_name}),
        unfenced_safe={key for key, vm in vms.items() if unfenced_safe(vm, claims)},
        now=now.wall,
        monotonic=now.monotonic,
        seen=SIGHTINGS.of(node_name),
        sightings=sightings,
        caches_synced=SIGHTINGS.synced,
        topology=PodTopology(nodes=nodes, pods=pods, namespace_labels=namespaces),
        namespace_labels=namespaces,
    )
    step = advance_incident(snapshot)
    if fences(step) and policy is not None:
        confirmed = await _again_from_a_fresh_read(kube, snapshot, policy)
        if confirmed is None:
            # Nothing written, nothing done: the fresh read fed kvha's sightings, so the next step
            # decides again from what the API said.
            return Stepped(recheck_after=RETRY_SOON)
        step = confirmed
    new_status = step.status.replace(finished=step.finished).to_api()
    written = new_status != observed
    if written and not await kube.patch_status("nodefailovers", name, new_status, resource_version=computed_from):
        # Computed from an outdated copy: no actions; the next step computes from the new one.
        return Stepped(recheck_after=0.0, written=True)
    failures = await execute(kube, [*step.fence_actions, *step.restart_actions])
    for failure in failures:
        kopf.warn(body, reason="ActionFailed", message=f"{failure.action}: {failure.error}")
    events.post(step.events, on=body, vms=vms)
    _observe(step, policy_name=failover_spec.policy_name, policy=policy, detected=failover_spec.detected_at)
    return Stepped(recheck_after=step.recheck_after, finished=step.finished, written=written)


@kopf.on.delete(GROUP, VERSION, "nodefailovers", when=_unfinished)
async def release_failover(
    *,
    name: str,
    body: kopf.Body,
    spec: kopf.Spec,
    status: kopf.Status,
    memo: Any,
    **kwargs: Any,
) -> None:
    """The finalizer's job: undo this incident's taint, confirmation annotation and remediation,
    restarting nothing; until that is done the handler fails temporarily and kopf keeps the
    finalizer and calls again."""
    kube: Kube = memo.kube
    ix = Indices.current()
    failover_spec, current, computed_from, observed = _parsed(body, spec, status)
    record = first(ix.policies, failover_spec.policy_name)
    live_policy = POLICIES.parse(failover_spec.policy_name, record) if record else None
    # The copy the incident recorded: a policy deleted first (the documented uninstall) still
    # names the remediation to remove.
    policy = incident_policy(current, live_policy)
    node_name = failover_spec.node_name
    release = release_incident(
        ReleaseSnapshot(
            name=name,
            uid=str(body["metadata"]["uid"]),
            spec=failover_spec,
            status=current,
            fencing=policy.fencing if policy else None,
            node=first(ix.nodes, node_name),
            pods_on_node=list(ix.pods_by_node.get(node_name, [])),
            remediation=await _remediation(kube, policy, current, node_name),
            others=await _other_incidents(kube, name=name, node=node_name),
            now=clock().wall,
        )
    )
    new_status = release.status.to_api()
    if new_status != observed and not await kube.patch_status(
        "nodefailovers", name, new_status, resource_version=computed_from
    ):
        raise kopf.TemporaryError("the NodeFailover changed; computing again", delay=1)
    failures = await execute(kube, release.actions)
    events.post(release.events, on=body)
    if failures or not release.released:
        why = "; ".join(f"{f.action}: {f.error}" for f in failures) or release.status.message or ""
        raise kopf.TemporaryError(why, delay=release.recheck_after or OBSERVE_INTERVAL)


def _parsed(
    body: kopf.Body, spec: kopf.Spec, status: kopf.Status
) -> tuple[NodeFailoverSpec, NodeFailoverStatus, str, dict[str, Any]]:
    """Spec and status as models, and the resourceVersion and raw status the step is computed from:
    kopf's body is live, so they are pinned before anything awaits."""
    current = NodeFailoverStatus.model_validate(dict(status)) if status else NodeFailoverStatus()
    return NodeFailoverSpec.model_validate(dict(spec)), current, str(body["metadata"]["resourceVersion"]), dict(status)


async def _other_incidents(kube: Kube, *, name: str, node: str) -> list[str]:
    """The node's other NodeFailovers that are unfinished and not being deleted, read from the API:
    they may hold the node's out-of-service taint or be about to count on it."""
    found = await kube.list_nodefailovers(label_selector=f"{FAILOVER_NODE_LABEL}={label_value(node)}")
    return [
        str(f["metadata"]["name"])
        for f in found
        if f["metadata"]["name"] != name
        and (f.get("spec") or {}).get("nodeName") == node
        and not f["metadata"].get("deletionTimestamp")
        and not (f.get("status") or {}).get("finished", False)
    ]


async def _again_from_a_fresh_read(kube: Kube, snap: IncidentSnapshot, policy: HAPolicySpec) -> IncidentStep | None:
    """The step again, from the Node and Lease read from the API instead of the cache; None when
    that read no longer shows the node Unhealthy, so that nothing fences a node that looks dead
    only because kvha's watch is behind."""
    fresh = await read_fresh(kube, snap.spec.node_name)
    step = advance_incident(
        replace(
            snap,
            node=fresh.node,
            lease=fresh.lease,
            seen=fresh.seen,
            now=fresh.now.wall,
            monotonic=fresh.now.monotonic,
        )
    )
    verdict = fresh.verdict(policy.detection)
    if fences(step) and not fresh_read_agrees(verdict=verdict, to_fence=True):
        log.info(
            "not fencing node %s yet: read from the API it is %s",
            snap.spec.node_name,
            verdict.summary if verdict else "deleted",
        )
        return None
    return step


async def _remediation(
    kube: Kube, policy: HAPolicySpec | None, status: NodeFailoverStatus, node: str
) -> RemediationObservation | None:
    """One GET of the remediation object, only when the Remediation strategy is in play."""
    if policy is None or policy.fencing.strategy is not FencingStrategy.REMEDIATION:
        return None
    template = policy.fencing.remediation_template
    if template is None or (status.finished):
        return None
    name = (status.fencing.remediation_name if status.fencing else None) or node
    try:
        plural = await kube.plural(api_version=template.api_version, kind=template.remediation_kind)
    except LookupError:
        return RemediationObservation.from_api(None)  # its kind is not served, so there is none
    obj = await kube.get_object(
        api_version=template.api_version, plural=plural, name=name, namespace=template.namespace
    )
    return RemediationObservation.from_api(obj)


def _observe(step: Any, *, policy_name: str, policy: HAPolicySpec | None, detected: Any) -> None:
    for entry in step.failed:
        metrics.observe_vm_restart_failed(policy=policy_name, priority=entry.priority)
    for entry in step.restored:
        if entry.running_at is not None:
            metrics.observe_vm_restored(
                policy=policy_name,
                priority=entry.priority,
                recovery_seconds=(entry.running_at - detected).total_seconds(),
            )
    if step.fenced_after is not None and policy is not None:
        metrics.observe_fenced(policy=policy_name, strategy=policy.fencing.strategy.value, seconds=step.fenced_after)
    if step.outcome is not None:
        metrics.observe_incident_closed(policy_name, step.outcome)
