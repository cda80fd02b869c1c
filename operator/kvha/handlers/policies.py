"""HAPolicy reconcile: every few seconds, from the in-memory indices (no API lists), evaluate the
policy, open incidents for dead nodes, and write status once if anything changed."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from kvha import metrics
from kvha.constants import (
    API_VERSION,
    FAILOVER_NODE_LABEL,
    FAILOVER_POLICY_LABEL,
    GROUP,
    REASON_INCIDENT_NOT_OPENED,
    REASON_NODE_UNHEALTHY,
    VERSION,
)
from kvha.handlers import events, vms
from kvha.handlers.freshness import SIGHTINGS, clock, read_fresh
from kvha.handlers.snapshot import Indices, Unique, by_key, parse_policy, values
from kvha.k8s.api import Kube
from kvha.leadership import LeadershipLost
from kvha.models.events import EventNote
from kvha.models.hapolicy import DetectionSpec, HAPolicyStatus
from kvha.models.names import label_value
from kvha.models.timeutil import format_micro_time
from kvha.reconcile import NewIncident, PolicySnapshot, evaluate_policy, fresh_read_agrees
from kvha.settings import OperatorSettings

log = logging.getLogger(__name__)
SETTINGS = OperatorSettings.from_env()  # until the timers read memo.settings


@kopf.timer(GROUP, VERSION, "hapolicies", interval=SETTINGS.policy_interval, initial_delay=0.5)
async def reconcile_policy(
    *,
    name: str,
    body: kopf.Body,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    memo: Any,
    **kwargs: Any,
) -> None:
    kube: Kube = memo.kube
    ix = Indices.current()
    namespace_labels = by_key(ix.namespaces)
    policy, problem = parse_policy(spec)
    current = HAPolicyStatus.model_validate(dict(status)) if status else HAPolicyStatus()
    # kopf's body is live: pin the version this step is computed from before anything awaits.
    computed_from, observed = meta["resourceVersion"], dict(status)
    nodes = list(values(ix.nodes))
    vm_views = list(values(ix.vms))
    SIGHTINGS.retain({n.name for n in nodes})
    now = clock()
    step = evaluate_policy(
        PolicySnapshot(
            name=name,
            generation=meta.get("generation"),
            policy=policy,
            invalid_message=problem,
            status=current,
            nodes=nodes,
            leases=Unique(ix.leases),
            vms=vm_views,
            namespace_labels=namespace_labels,
            vmis=Unique(ix.vmis),
            pods=list(values(ix.pods_by_node)),
            launcher_pods=ix.launchers,
            failovers=list(values(ix.failovers)),
            now=now.wall,
            monotonic=now.monotonic,
            sightings={n.name: SIGHTINGS.of(n.name) for n in nodes},
            caches_synced=SIGHTINGS.synced,
        )
    )
    for incident in step.open_incidents:
        if policy is None:
            continue
        try:
            await _open(kube, policy_name=name, incident=incident, detection=policy.detection)
        except LeadershipLost:
            raise
        except Exception as exc:  # one node's refused incident must not stop the others or the status write
            log.exception("could not open the incident for node %s", incident.node)
            message = f"could not open NodeFailover {incident.name} for node {incident.node}: {exc}"
            events.post([EventNote(REASON_INCIDENT_NOT_OPENED, message[:1000], "Warning")], on=body)
    new_status = step.status.to_api()
    if new_status != observed and not await kube.patch_status(
        "hapolicies", name, new_status, resource_version=computed_from
    ):
        return  # computed from an outdated copy: the next tick computes from the new one
    events.post(step.events, on=body)
    if step.protections:
        vms.tell_owners(memo, policy=name, protections=step.protections, vms={vm.key: vm for vm in vm_views})
    if policy is not None and step.storm is not None:
        metrics.observe_policy(
            policy=name,
            protected=step.status.protected_vms,
            unprotectable=dict(step.unprotectable or {}),
            capacity=step.status.failover_capacity,
            target=policy.admission_control.host_failures_to_tolerate,
            storm=step.storm.blocks_action,
            active=step.status.active_failover_count,
            waiting=step.waiting,
            tainted_recovered=step.tainted_recovered,
        )


async def _open(kube: Kube, *, policy_name: str, incident: NewIncident, detection: DetectionSpec) -> None:
    fresh = await read_fresh(kube, incident.node)
    verdict = fresh.verdict(detection)
    if not fresh_read_agrees(verdict=verdict, to_fence=False):
        log.info(
            "node %s looked unhealthy in the cache (%s) but not when read from the API (%s): no incident",
            incident.node,
            incident.reason,
            verdict.summary if verdict else "deleted",
        )
        return
    body = {
        "apiVersion": API_VERSION,
        "kind": "NodeFailover",
        "metadata": {
            "name": incident.name,
            "labels": {
                FAILOVER_NODE_LABEL: label_value(incident.node),
                FAILOVER_POLICY_LABEL: label_value(policy_name),
            },
        },
        "spec": {
            "nodeName": incident.node,
            "policyName": policy_name,
            # Full precision: the policy compares it with the start of the node's ill health to
            # know the incident exists already; seconds would make it look older and re-create it.
            "detectedAt": format_micro_time(incident.detected_at),
            "reason": incident.reason,
        },
    }
    created = await kube.create_nodefailover(body)
    if created is None:
        return  # already there: opened by an earlier tick or the previous leader
    log.warning("node %s is unhealthy (%s): opened NodeFailover %s", incident.node, incident.reason, incident.name)
    metrics.observe_incident_opened(policy_name)
    note = EventNote(REASON_NODE_UNHEALTHY, f"{incident.reason}; opened NodeFailover {incident.name}", "Warning")
    events.post([note], on=events.node_ref(incident.node))
    events.post([note], on=created)
