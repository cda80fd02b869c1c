"""A VMI's next state from its launcher pod and its node, as one pure function.

Two KubeVirt components write VMI status and the difference matters for HA:

* virt-controller (runs elsewhere, always reachable): creates the launcher pod, reports
  Scheduling/Scheduled from the pod, mirrors the pod's Ready condition, and - in its node
  controller - fails VMIs whose node stopped heartbeating and whose pod is gone.
* virt-handler (runs on the VMI's node): boots the guest (-> Running), notices the guest died
  (-> Failed) and kills guests whose VMI is final or gone. It can do this only while its node is
  up; on a powered-off or partitioned node nothing it would do happens.

`plan_vmi` encodes both and returns what to write and what happened to the real guest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kvha_testbed.sim.vm_logic import FINAL_PHASES, condition, set_condition

Obj = dict[str, Any]

# Phases in which the VMI has (had) a launcher pod it depends on.
POD_PHASES = frozenset({"Scheduling", "Scheduled", "Running"})


@dataclass
class VmiPlan:
    """What to do for one VMI: at most one status patch, plus effects on the real guest."""

    status: Obj | None = None  # merge into .status (None: nothing changes)
    labels: dict[str, str] = field(default_factory=dict)
    create_pod: bool = False
    start_guest: bool = False
    stop_guest: str | None = None  # reason the guest died, if it did


def pod_alive(pod: Obj) -> bool:
    """KubeVirt's node controller definition: not final and not all containers terminated.

    A pod that is merely Terminating (deletionTimestamp set, containers still running) is alive:
    that is why a VMI on a dead node stays Running until its pod is force-deleted.
    """
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return False
    containers = status.get("containerStatuses") or []
    return not containers or not all((c.get("state") or {}).get("terminated") for c in containers)


def _newest(pods: list[Obj]) -> Obj | None:
    return max(pods, key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "", default=None)


def transition(status: Obj, new_phase: str, now: str) -> Obj:
    stamps = list(status.get("phaseTransitionTimestamps") or [])
    if status.get("phase") != new_phase:
        stamps.append({"phase": new_phase, "phaseTransitionTimestamp": now})
    return {"phase": new_phase, "phaseTransitionTimestamps": stamps}


NEVER_BOOTS_LABEL = "kvha-testbed.io/never-boots"
"""Test-only: a VMI labelled `kvha-testbed.io/never-boots=true` never boots. Its launcher pod runs
but the guest never starts, so the VMI stays Scheduled and never Ready, the way a replacement with
an image it cannot pull, a missing secret or a crash-looping guest does. Put it on a running VM's
template (`spec.template.metadata.labels`): the running instance is unaffected, the next one is broken."""


def never_boots(vmi: Obj) -> bool:
    return ((vmi.get("metadata") or {}).get("labels") or {}).get(NEVER_BOOTS_LABEL) == "true"


def plan_vmi(vmi: Obj, pods: list[Obj], *, node_up: bool, guest_live: bool, now: str) -> VmiPlan:
    """Decide the next step for a VMI that is not being deleted.

    `pods` are this VMI's launcher pods, as the API has them (the caller re-checks an empty cache
    answer against the API before trusting it). `node_up` says whether the VMI's node runs and
    reaches the API (virt-handler can act); `guest_live` whether the guest really runs (ledger).
    """
    status = vmi.get("status") or {}
    current = status.get("phase") or "Pending"
    if current in FINAL_PHASES:
        reason = f"VMI is {current}: virt-handler killed the domain" if guest_live and node_up else None
        return VmiPlan(stop_guest=reason)
    pod = _newest(pods)
    if pod is None:
        return _without_pod(status, current, node_up=node_up, now=now)
    pod_phase = (pod.get("status") or {}).get("phase") or "Pending"
    if pod_phase in ("Succeeded", "Failed"):
        return VmiPlan(
            status=transition(status, pod_phase, now), stop_guest=f"launcher pod {pod_phase}" if guest_live else None
        )
    return _follow_pod(
        status, current, pod, node_up=node_up, guest_live=guest_live, now=now, boots=not never_boots(vmi)
    )


def _without_pod(status: Obj, current: str, *, node_up: bool, now: str) -> VmiPlan:
    if current == "Pending":
        return VmiPlan(create_pod=True, status=transition(status, "Scheduling", now))
    # As virt-controller's lifecycle.go: a VMI whose pod object is gone is Failed at once, whatever
    # its node's state. The guest dies only if the node is up to kill it (a partitioned node's
    # guest runs on: the split-brain hazard).
    return VmiPlan(
        status=transition(status, "Failed", now),
        stop_guest="launcher pod deleted on a live node" if node_up and current == "Running" else None,
    )


def _follow_pod(
    status: Obj, current: str, pod: Obj, *, node_up: bool, guest_live: bool, now: str, boots: bool = True
) -> VmiPlan:
    """Scheduling/Scheduled/Running from a live launcher pod; Ready mirrors the pod's Ready."""
    plan = VmiPlan()
    pod_status, pod_meta = pod.get("status") or {}, pod.get("metadata") or {}
    node_name = (pod.get("spec") or {}).get("nodeName") or ""
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    if not node_name:
        next_phase = "Scheduling"
        scheduled = condition(pod_status.get("conditions") or [], "PodScheduled") or {}
        if scheduled.get("status") == "False":
            conditions = set_condition(
                conditions,
                kind="PodScheduled",
                status="False",
                now=now,
                reason=scheduled.get("reason", ""),
                message=scheduled.get("message", ""),
            )
    elif pod_status.get("phase") == "Running" and node_up and current != "Running" and boots:
        next_phase, plan.start_guest = "Running", True
    elif current == "Running" and node_up and not guest_live:
        next_phase = "Failed"  # the guest is gone although the pod looks fine (node rebooted)
    else:
        next_phase = current if current == "Running" else "Scheduled"

    pod_ready = (condition(pod_status.get("conditions") or [], "Ready") or {}).get("status") == "True"
    ready = next_phase == "Running" and pod_ready and not pod_meta.get("deletionTimestamp")
    conditions = set_condition(
        conditions, kind="Ready", status="True" if ready else "False", now=now, reason="" if ready else "PodNotReady"
    )
    desired: Obj = {**transition(status, next_phase, now), "conditions": conditions}
    if node_name:
        desired["nodeName"] = node_name
        desired["activePods"] = {pod_meta.get("uid", ""): node_name}
        plan.labels = {"kubevirt.io/nodeName": node_name}
    changed = {k: v for k, v in desired.items() if status.get(k) != v}
    plan.status = changed or None
    return plan
