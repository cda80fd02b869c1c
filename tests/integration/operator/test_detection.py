"""Detection judged on what kvha observed, on the real control plane (issue 9).

A node is silent when kvha has not seen its Lease or heartbeats change for long enough, measured on
kvha's own clock; never because the node's clock is off, and never because kvha's own view of the
cluster is behind. Each scenario is a live node that an operator comparing timestamps, or trusting
its cache, would fence.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kvha.k8s.api import Kube
from kvha_testbed.apiproxy import DelayingProxy
from kvha_testbed.fixtures import NodeFactory
from kvha_testbed.kube import NODES, KubeError
from kvha_testbed.kwok import node_ready
from kvha_testbed.scenario import FAST_DETECTION, Scenario
from kvha_testbed.testbed import Testbed
from kvha_testbed.waiting import holds_for, wait_for

pytestmark = pytest.mark.integration
Obj = dict[str, Any]
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"
SNR = "/apis/self-node-remediation.medik8s.io/v1alpha1"


def _holds(scene: Scenario, probe: Callable[[], bool], *, what: str, duration: float) -> None:
    """`holds_for`, and when it stops holding, what the incidents and the operator said."""
    try:
        holds_for(probe, what=what, duration=duration)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{json.dumps(scene.diagnose(), indent=1, default=str)}") from None


def _ready(scene: Scenario, node: str) -> bool:
    return node_ready(scene.kube.get(NODES.path(name=node)))


def test_a_node_whose_clock_runs_four_minutes_behind_is_not_fenced_by_the_watchdog(scenario: Scenario) -> None:
    """Given a live host whose clock runs 4 minutes behind (its Lease renewTime says "4 minutes
    ago" at every renewal) and Watchdog confirmation, when kvha watches it, then it opens no
    incident, applies no taint and restarts nothing: the Lease keeps changing, so the node is alive."""
    scene = scenario
    [host_a] = scene.nodes(1, memory="16Gi")
    for name in ("db-1", "db-2"):
        scene.vm(name, memory="2Gi")
    for name in ("db-1", "db-2"):
        scene.bed.wait_vm_status(scene.namespace, name, "Running")
    scene.nodes(2, memory="16Gi")
    old_uids = {name: scene.vmi_uid(name) for name in ("db-1", "db-2")}
    scene.policy(fencing={"strategy": "OutOfServiceTaint", "confirmation": "Watchdog", "watchdogTimeout": "10s"})
    op = scene.operator().start()
    wait_for(op.ready, what="the operator's caches to sync (/readyz)", timeout=60, show=op.log_tail)

    with scene.bed.faults.skewed_clock(host_a, seconds=-240):
        _holds(
            scene,
            lambda: (
                not scene.failovers()
                and not scene.has_taint(host_a, OUT_OF_SERVICE)
                and all(scene.vmi_uid(n) == u for n, u in old_uids.items())
            ),
            what="no incident, no taint and no restart for a live node with a skewed clock",
            duration=40,
        )
        assert _ready(scene, host_a), "the controller-manager must still see the node alive"
    # kvha only reads Nodes to judge them (its cache-sync handler on Node events writes nothing).
    meta = scene.kube.get(NODES.path(name=host_a))["metadata"]
    assert "kvha.io/finalizer" not in (meta.get("finalizers") or [])
    assert not [a for a in meta.get("annotations") or {} if a.startswith("kopf.kvha.io")]
    scene.bed.ledger.assert_no_split_brain()
    for name in old_uids:
        assert len(scene.bed.ledger.live_instances(f"{scene.namespace}/{name}")) == 1


def test_lease_renewals_that_reach_kvha_late_create_no_remediation(scenario: Scenario, tmp_path: Path) -> None:
    """Given the Remediation strategy and an operator whose watch delivers one live host's Lease
    renewals 45 s late (its cache says the Lease is stale, the API says it is fresh), when kvha
    evaluates the host, then it reads the Node and Lease from the API before acting, opens no
    incident and creates no remediation."""
    scene = scenario
    [host_a] = scene.nodes(1, memory="16Gi")
    scene.vm("svc-1", memory="2Gi")
    scene.bed.wait_vm_status(scene.namespace, "svc-1", "Running")
    scene.nodes(2, memory="16Gi")
    old_uid = scene.vmi_uid("svc-1")
    scene.policy(fencing=scene.remediation_fencing())
    proxy = DelayingProxy(scene.kube.credentials).start()
    try:
        proxy.delay_watch_events(
            lambda event: (
                (event.get("object") or {}).get("kind") == "Lease"
                and (event["object"].get("metadata") or {}).get("namespace") == "kube-node-lease"
                and event["object"]["metadata"].get("name") == host_a
            ),
            seconds=45,
        )
        op = scene.operator(kubeconfig=proxy.kubeconfig(tmp_path / "via-proxy.kubeconfig")).start()
        wait_for(op.ready, what="the operator's caches to sync (/readyz)", timeout=60, show=op.log_tail)

        _holds(
            scene,
            lambda: not scene.failovers() and scene.vmi_uid("svc-1") == old_uid,
            what="no incident and no restart for a live node whose renewals reach kvha late",
            duration=45,
        )
        assert proxy.delayed_events > 0, "the scenario needs the Lease renewals to have been held back"
        remediations, _ = scene.kube.list(f"{SNR}/namespaces/{scene.namespace}/selfnoderemediations")
        assert remediations == []
        assert _ready(scene, host_a)
        assert "not when read from the API" in op.log_tail(400), "kvha must have checked the API, not been lucky"
    finally:
        for op in scene.operators:
            op.stop()
        proxy.stop()
    scene.bed.ledger.assert_no_split_brain()


def test_the_operator_is_not_ready_and_judges_nothing_until_its_caches_are_synced(
    scenario: Scenario, tmp_path: Path
) -> None:
    """Given an operator whose initial list of Leases takes 25 s to arrive, while a host it watches
    is already dead, when it starts, then it reports not ready and opens no incident until the
    list has arrived; then it is ready and handles the dead host."""
    scene = scenario
    [host_a] = scene.nodes(1, memory="16Gi")
    scene.nodes(2, memory="16Gi")
    scene.policy(fencing={"strategy": "OutOfServiceTaint", "confirmation": "Manual"})
    scene.bed.faults.power_off(host_a)
    wait_for(lambda: not _ready(scene, host_a), what="the controller-manager to see the host dead", timeout=60)
    proxy = DelayingProxy(scene.kube.credentials).start()
    try:
        proxy.delay_requests(
            lambda method, path: (
                method == "GET"
                and path.partition("?")[0] == "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
                and "watch=" not in path
            ),
            seconds=25,
        )
        op = scene.operator(kubeconfig=proxy.kubeconfig(tmp_path / "via-proxy.kubeconfig")).start()
        _holds(
            scene,
            lambda: not op.ready() and not scene.failovers(),
            what="not ready and no incident while the Lease list has not arrived",
            duration=12,
        )
        wait_for(op.ready, what="the operator's caches to sync (/readyz)", timeout=60, show=op.log_tail)
        scene.failover(phase="Fencing", timeout=60)
    finally:
        for op in scene.operators:
            op.stop()
        proxy.stop()


@pytest.mark.parametrize("value", ["30s", "2m59s"])
def test_the_api_server_rejects_a_kubevirt_heartbeat_threshold_under_three_minutes(
    scenario: Scenario, value: str
) -> None:
    """virt-handler beats every 60-132 s: a shorter threshold would fail live nodes."""
    with pytest.raises(KubeError) as rejected:
        scenario.policy(detection={**FAST_DETECTION, "kubevirtHeartbeatStaleAfter": value})
    assert rejected.value.status == 422
    assert "below 3m" in rejected.value.message


@pytest.mark.parametrize("value", ["3m", None])
def test_the_api_server_accepts_a_kubevirt_heartbeat_threshold_of_three_minutes_or_none(
    scenario: Scenario, value: str | None
) -> None:
    created = scenario.policy(detection={**FAST_DETECTION, "kubevirtHeartbeatStaleAfter": value})
    assert created["spec"]["detection"].get("kubevirtHeartbeatStaleAfter") == value


def test_fresh_reads_return_the_node_and_its_lease_as_the_api_has_them(plane: Testbed, nodes: NodeFactory) -> None:
    """What kvha re-reads before acting: the Node and its Lease, or None once they are gone."""
    [node] = nodes(1)
    kube = Kube(plane.kubernetes_client())
    read_node = asyncio.run(kube.read_node(node))
    read_lease = asyncio.run(kube.read_node_lease(node))
    assert read_node is not None
    assert read_node["metadata"]["name"] == node
    assert read_lease is not None
    assert read_lease["spec"]["renewTime"]
    assert asyncio.run(kube.read_node("no-such-node")) is None
    assert asyncio.run(kube.read_node_lease("no-such-node")) is None
