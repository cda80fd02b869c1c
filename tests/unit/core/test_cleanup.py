"""Clean-up that terminates: a recovered node's DaemonSet and static pods do not hold kvha's taint
forever, and a NodeFailover deleted by hand undoes what it put on the node, and only that."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from core.strategies import (
    NOW,
    OUT_OF_SERVICE,
    ago,
    fencing_snapshot,
    make_lease,
    make_node,
    policy_snapshot,
    sightings,
)
from core.test_fencing import CONFIRMED, INCIDENT, TEMPLATE, ours
from kvha.constants import COND_RECOVERED_NODE_TAINTED, REASON_RELEASING
from kvha.fencing import (
    OBSERVE_INTERVAL,
    DeleteRemediation,
    RemediationObservation,
    RemoveFenceConfirmation,
    RemoveOutOfServiceTaint,
    pods_holding_node,
)
from kvha.models.hapolicy import FencingSpec, FencingStrategy, HAPolicySpec, HAPolicyStatus
from kvha.models.nodefailover import FailoverPhase, FencingStatus, NodeFailoverSpec, NodeFailoverStatus
from kvha.models.views import NodeView, PodView
from kvha.reconcile import (
    FailoverRecord,
    PolicyStep,
    ReleaseSnapshot,
    advance_incident,
    evaluate_policy,
    release_incident,
)
from kvha.reconcile.policy import TAINT_REMOVAL_GRACE

SPEC = NodeFailoverSpec(node_name="w1", policy_name="production", detected_at=INCIDENT.detected_at, reason="x")
FENCED = FencingStatus(
    strategy="OutOfServiceTaint",
    started_at=INCIDENT.detected_at,
    confirmed_at=INCIDENT.detected_at + timedelta(seconds=5),
    confirmed_by="Node annotation",
    taint_applied=True,
)


def pod(name: str, *, owner: str | None = None, mirror: bool = False, phase: str = "Running") -> PodView:
    """A pod bound to w1 as the API returns it."""
    meta: dict[str, object] = {"name": name, "namespace": "kube-system"}
    if owner:
        meta["ownerReferences"] = [{"kind": owner, "name": "x", "uid": f"uid-{name}", "controller": True}]
    if mirror:
        meta["annotations"] = {"kubernetes.io/config.mirror": "abc"}
    return PodView.from_api({"metadata": meta, "spec": {"nodeName": "w1"}, "status": {"phase": phase}})


VIRT_HANDLER = pod("virt-handler-x", owner="DaemonSet")
KUBE_PROXY = pod("kube-proxy-w1", mirror=True)
WORKLOAD = pod("web-7c9", owner="ReplicaSet")


def test_daemonset_and_static_pods_do_not_hold_the_taint() -> None:
    assert pods_holding_node([VIRT_HANDLER, KUBE_PROXY]) == 0
    assert pods_holding_node([VIRT_HANDLER, WORKLOAD, pod("done", phase="Succeeded")]) == 1


def recovered_step(pods: list[PodView]) -> tuple[object, ...]:
    """The fence actions of a completed incident whose node is healthy again (for longer than
    healthyDelay) and still carries kvha's taint, with `pods` bound to it."""
    node = replace(make_node("w1"), taints=(OUT_OF_SERVICE,))
    others = [make_node("w2"), make_node("w3")]
    leases = {n.name: make_lease(n.name) for n in [node, *others]}
    seen = {n.name: sightings() for n in [node, *others]}
    step = advance_incident(
        fencing_snapshot(
            name=INCIDENT.name,
            uid=INCIDENT.uid,
            spec=SPEC,
            status=NodeFailoverStatus(phase=FailoverPhase.COMPLETED, fencing=FENCED, started_at=NOW, completed_at=NOW),
            policy=HAPolicySpec(),
            nodes=[node, *others],
            leases=leases,
            seen=seen,
            pods_on_node=pods,
        )
    )
    return step.fence_actions


def test_a_recovered_node_running_only_daemonset_and_static_pods_loses_the_taint() -> None:
    """virt-handler, CNI and kube-proxy run again at once on a revived host; they never leave."""
    assert RemoveOutOfServiceTaint("w1") in recovered_step([VIRT_HANDLER, KUBE_PROXY])


def test_a_recovered_node_keeps_the_taint_while_another_pod_is_bound_to_it() -> None:
    assert RemoveOutOfServiceTaint("w1") not in recovered_step([VIRT_HANDLER, WORKLOAD])


# --- a NodeFailover deleted by hand ------------------------------------------------------------

DEAD_TAINTED = replace(
    make_node("w1", ready="Unknown", ready_for=90, heartbeat_ago=130),
    taints=(OUT_OF_SERVICE,),
    fence_confirmed=CONFIRMED,
)


def release(**changes: object) -> ReleaseSnapshot:
    base = ReleaseSnapshot(
        name=INCIDENT.name,
        uid=INCIDENT.uid,
        spec=SPEC,
        status=NodeFailoverStatus(phase=FailoverPhase.RESTARTING, fencing=FENCED),
        fencing=FencingSpec(),
        node=DEAD_TAINTED,
        pods_on_node=[VIRT_HANDLER],
        remediation=None,
        others=(),
        now=NOW,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_deleting_an_incident_undoes_its_taint_and_confirmation_even_while_the_node_is_down() -> None:
    done = release_incident(release())
    assert set(done.actions) == {RemoveOutOfServiceTaint("w1"), RemoveFenceConfirmation("w1", CONFIRMED)}
    assert not done.released, "released once the node shows nothing of it"
    assert "is being deleted" in (done.status.message or "")
    assert [e.reason for e in done.events] == [REASON_RELEASING]
    assert done.recheck_after == OBSERVE_INTERVAL, "the node is looked at again until nothing of it is left"

    clean = release_incident(release(node=make_node("w1", ready="Unknown"), status=done.status))
    assert clean.actions == ()
    assert clean.released
    assert clean.recheck_after is None
    assert clean.status.fencing is not None
    assert clean.status.fencing.taint_removed


def test_deleting_an_incident_restarts_nothing_and_waits_for_pods_bound_to_the_node() -> None:
    waiting = release_incident(release(pods_on_node=[VIRT_HANDLER, WORKLOAD]))
    assert RemoveOutOfServiceTaint("w1") not in waiting.actions
    assert waiting.actions == (RemoveFenceConfirmation("w1", CONFIRMED),)
    assert not waiting.released


def test_deleting_an_incident_leaves_the_taint_to_another_unfinished_incident_of_the_node() -> None:
    shared = release_incident(release(others=("w1-production-20260301-121500",)))
    assert RemoveOutOfServiceTaint("w1") not in shared.actions
    assert not shared.released
    assert "w1-production-20260301-121500" in (shared.status.message or "")


def test_deleting_an_incident_leaves_evidence_of_other_incidents_alone() -> None:
    """Another incident's confirmation, a taint kvha did not apply, a remediation it does not own."""
    theirs = replace(DEAD_TAINTED, fence_confirmed="w1-production-20260301-121500")
    foreign = RemediationObservation(exists=True, succeeded=True, uid="uid-nho", owner_uid=None)
    remediation = FencingSpec(strategy=FencingStrategy.REMEDIATION, remediation_template=TEMPLATE)
    done = release_incident(
        release(
            node=theirs,
            status=NodeFailoverStatus(phase=FailoverPhase.FENCING, fencing=FencingStatus(strategy="Remediation")),
            fencing=remediation,
            remediation=foreign,
        )
    )
    assert done.actions == ()
    assert done.released


def test_deleting_an_incident_deletes_the_remediation_it_owns() -> None:
    remediation = FencingSpec(strategy=FencingStrategy.REMEDIATION, remediation_template=TEMPLATE)
    done = release_incident(
        release(
            node=make_node("w1", ready="Unknown"),
            status=NodeFailoverStatus(
                phase=FailoverPhase.FENCING, fencing=FencingStatus(strategy="Remediation", remediation_name="w1")
            ),
            fencing=remediation,
            remediation=ours(),
        )
    )
    assert done.actions == (DeleteRemediation(node="w1", name="w1", template=TEMPLATE, uid="uid-of-the-remediation"),)
    assert not done.released


def test_deleting_an_incident_that_applied_nothing_releases_at_once() -> None:
    done = release_incident(release(node=make_node("w1"), status=NodeFailoverStatus(phase=FailoverPhase.DETECTED)))
    assert done.actions == ()
    assert done.released
    assert done.status.fencing is None, "no fencing record is invented for an incident that never fenced"


# --- the policy says so when a recovered node keeps the taint ----------------------------------


def policy_step(*, node: NodeView, record: FailoverRecord, status: HAPolicyStatus, after: float) -> PolicyStep:
    nodes = [node, make_node("w2"), make_node("w3")]
    return evaluate_policy(policy_snapshot(HAPolicySpec(), nodes, status=status, failovers=[record], after=after))


RECOVERED = FailoverRecord(
    name=INCIDENT.name,
    node="w1",
    policy="production",
    phase=FailoverPhase.COMPLETED,
    detected_at=ago(600),
    recovered=True,
)
BACK_TAINTED = replace(make_node("w1"), taints=(OUT_OF_SERVICE,))


def tainted_condition(step: PolicyStep) -> str:
    return next(c.status for c in step.status.conditions if c.type == COND_RECOVERED_NODE_TAINTED)


def test_a_ready_node_that_keeps_an_incident_s_taint_sets_a_condition_after_a_grace() -> None:
    first = policy_step(node=BACK_TAINTED, record=RECOVERED, status=HAPolicyStatus(), after=0)
    assert tainted_condition(first) == "False", "undoing fencing takes a step or two"
    assert [(t.node, t.failover) for t in first.status.tainted_nodes] == [("w1", INCIDENT.name)]
    assert first.tainted_recovered == 0

    later = policy_step(node=BACK_TAINTED, record=RECOVERED, status=first.status, after=TAINT_REMOVAL_GRACE + 1)
    assert tainted_condition(later) == "True"
    assert later.tainted_recovered == 1
    assert [e.reason for e in later.events] == ["OutOfServiceTaintRemains"]
    message = next(c.message for c in later.status.conditions if c.type == COND_RECOVERED_NODE_TAINTED)
    assert f"node w1 (NodeFailover {INCIDENT.name}" in message

    removed = policy_step(node=make_node("w1"), record=RECOVERED, status=later.status, after=TAINT_REMOVAL_GRACE + 5)
    assert tainted_condition(removed) == "False"
    assert removed.status.tainted_nodes == []


def test_no_condition_for_a_node_still_down_or_an_incident_that_finished() -> None:
    down = replace(make_node("w1", ready="Unknown", ready_for=600), taints=(OUT_OF_SERVICE,))
    status = HAPolicyStatus(tainted_nodes=[])
    for node, record in ((down, RECOVERED), (BACK_TAINTED, replace(RECOVERED, finished=True))):
        step = policy_step(node=node, record=record, status=status, after=0)
        assert step.status.tainted_nodes == []
