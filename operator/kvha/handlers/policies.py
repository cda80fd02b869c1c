"""HAPolicy: a kopf daemon per policy evaluates it from the in-memory indices (no API lists), opens
incidents for dead nodes, and writes status once if anything changed.

Two halves, two rhythms. Detection (cheap) runs when a Node, a policy, an incident or the Lease of
a node that is not Healthy changed, or when its verdicts' `recheck_after` is due
(`kvha.handlers.rhythm`). Admission control (slow: which VMs are protected, how many host failures
the cluster absorbs) runs off the event loop, in a thread, when the workload or the set of Healthy
nodes changed, at most once per `ADMISSION_INTERVAL`; its latest result is carried into each
detection step, which never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
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
from kvha.handlers.rhythm import CLOSE_WATCH, DETECTION, WORKLOAD, Signal, mark, pause
from kvha.handlers.snapshot import POLICIES, Indices, Unique, by_key, values
from kvha.k8s.api import Kube
from kvha.leadership import LeadershipLost
from kvha.models.events import EventNote
from kvha.models.hapolicy import DetectionSpec, HAPolicySpec, HAPolicyStatus
from kvha.models.names import label_value
from kvha.models.timeutil import format_micro_time
from kvha.reconcile import (
    Admission,
    AdmissionSnapshot,
    NewIncident,
    PolicySnapshot,
    PolicyStep,
    assess_admission,
    evaluate_policy,
    fresh_read_agrees,
)
from kvha.settings import OperatorSettings

log = logging.getLogger(__name__)

ADMISSION_INTERVAL = 5.0
"""Seconds between two admission controls of one policy while its inputs keep changing (VMs
restarting, pods scheduled): its figures are a capacity forecast, not a safety decision."""
ERROR_BACKOFF = 5.0
STOP_GRACE = 10.0
"""Seconds kopf lets a stopping daemon finish its step before cancelling it."""


@dataclass
class AdmissionControl:
    """One policy's admission control: its latest result, what that was computed from, and the run
    in flight. A finished run bumps `done`, which wakes the daemon to publish it."""

    result: Admission | None = None
    inputs: Hashable = None
    started: float = float("-inf")
    running: asyncio.Task[Admission] | None = None
    done: Signal = field(default_factory=lambda: Signal("admission"))

    def take(self) -> Admission | None:
        """The result of a finished run, once (None if none finished since the last call)."""
        if self.running is None or not self.running.done():
            return None
        run, self.running = self.running, None
        if run.cancelled() or run.exception() is not None:
            log.error("admission control failed", exc_info=run.exception())
            self.inputs = None  # try again at the next step
            return None
        self.result = run.result()
        return self.result

    def due_in(self, inputs: Hashable, now: float) -> float | None:
        """0 to start a run now, seconds until one may start, or None when none is needed."""
        if self.running is not None or inputs == self.inputs:
            return None
        if self.result is None:
            return 0.0
        return max(self.started + ADMISSION_INTERVAL - now, 0.0)

    def start(self, snap: AdmissionSnapshot, inputs: Hashable, now: float) -> None:
        self.inputs, self.started = inputs, now
        self.running = asyncio.ensure_future(asyncio.to_thread(assess_admission, snap))
        self.running.add_done_callback(lambda _: self.done.bump())


@kopf.daemon(GROUP, VERSION, "hapolicies", cancellation_backoff=STOP_GRACE)
async def reconcile_policy(
    *,
    name: str,
    body: kopf.Body,
    memo: Any,
    stopped: kopf.DaemonStopped,
    **kwargs: Any,
) -> None:
    settings: OperatorSettings = memo.settings
    admission = AdmissionControl()
    signals = (DETECTION, WORKLOAD, admission.done)
    owner = f"HAPolicy/{name}"
    try:
        while not stopped:
            since = mark(signals)
            try:
                recheck = await evaluate(name=name, body=body, memo=memo, admission=admission)
            except LeadershipLost:
                raise
            except Exception:  # one failing evaluation must not stop the policy: kopf would back off
                log.exception("HAPolicy %s: the evaluation failed; trying again in %ss", name, ERROR_BACKOFF)
                recheck = ERROR_BACKOFF
            await pause(signals, since, recheck_after=recheck, min_interval=settings.policy_interval, stopped=stopped)
    finally:
        CLOSE_WATCH.set(owner, ())
        if admission.running is not None:
            admission.running.cancel()


async def evaluate(*, name: str, body: kopf.Body, memo: Any, admission: AdmissionControl) -> float | None:
    """One evaluation: detection with the latest admission control, incidents opened, status
    written; admission control started again if its inputs changed. Returns when to look again."""
    kube: Kube = memo.kube
    ix = Indices.current()
    # kopf's body is live: pin the version this step is computed from before anything awaits.
    meta, computed_from = body["metadata"], str(body["metadata"]["resourceVersion"])
    observed = dict(body.get("status") or {})
    policy, problem = POLICIES.parse_with_problem(
        name, {"spec": body.get("spec") or {}, "generation": meta.get("generation")}
    )
    current = HAPolicyStatus.model_validate(observed) if observed else HAPolicyStatus()
    fresh = admission.take()
    if fresh is not None:  # told at once: a status conflict below must not lose these Events
        vms.tell_owners(memo, policy=name, protections=fresh.protections, vms={vm.key: vm for vm in values(ix.vms)})
    nodes = list(values(ix.nodes))
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
            admission=admission.result if policy is not None else None,
            failovers=list(values(ix.failovers)),
            now=now.wall,
            monotonic=now.monotonic,
            sightings={n.name: SIGHTINGS.of(n.name) for n in nodes},
            caches_synced=SIGHTINGS.synced,
        )
    )
    CLOSE_WATCH.set(f"HAPolicy/{name}", step.watch_closely)
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
        return 0.0  # computed from an outdated copy: the next step computes from the new one
    events.post(step.events, on=body)
    if policy is not None:
        _observe(name, policy, step, admission.result)
    recheck = step.recheck_after
    if policy is not None and SIGHTINGS.synced:
        due = _admit(ix, policy, step, admission, meta)
        recheck = due if recheck is None or (due is not None and due < recheck) else recheck
    return recheck


def _admit(ix: Indices, policy: HAPolicySpec, step: PolicyStep, admission: AdmissionControl, meta: Any) -> float | None:
    """Start admission control if its inputs changed and it may run now; else when it may."""
    inputs = (WORKLOAD.version, step.healthy, meta.get("generation"))
    now = time.monotonic()
    due = admission.due_in(inputs, now)
    if due != 0.0:
        return due
    # Plain copies taken here, on the event loop: the thread must not read indices the caches change.
    namespace_labels = by_key(ix.namespaces)
    admission.start(
        AdmissionSnapshot(
            policy=policy,
            vms=list(values(ix.vms)),
            namespace_labels=namespace_labels,
            vmis=by_key(ix.vmis),
            pods=list(values(ix.pods_by_node)),
            launcher_pods={uid: tuple(pods) for uid, pods in ix.launchers.items()},
            nodes=list(values(ix.nodes)),
            healthy=step.healthy,
        ),
        inputs,
        now,
    )
    return None


def _observe(name: str, policy: HAPolicySpec, step: PolicyStep, admission: Admission | None) -> None:
    if step.storm is None:
        return
    metrics.observe_policy(
        policy=name,
        protected=step.status.protected_vms,
        unprotectable=dict(admission.unprotectable) if admission else {},
        capacity=step.status.failover_capacity if admission else None,
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
