"""The leader's write deadline: checked immediately before every write, on the monotonic clock,
whatever the renewal is doing."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from kvha.actuation import execute
from kvha.fencing import ApplyOutOfServiceTaint
from kvha.k8s.api import Kube, remove_node_annotation_if
from kvha.k8s.leader import LeaderElector, LeaseConfig
from kvha.leadership import LeadershipLost, LeaderTerm, WriteGuard
from kvha.planner import RestartVM

from .fakes import FakeClock, FakeLeases, NoClient, RawResponse, Recorder


def _kube(guard: WriteGuard) -> tuple[Kube, Recorder, Recorder]:
    kube = Kube(NoClient(), guard=guard, timeout=1.5)  # type: ignore[arg-type]
    node = {"metadata": {"resourceVersion": "7"}, "spec": {"taints": []}}
    core = Recorder({"read_node": node, "delete_namespaced_pod": RawResponse()})
    custom = Recorder({"patch_namespaced_custom_object": {"status": {}}})
    kube.core, kube.custom = core, custom  # type: ignore[assignment]
    return kube, core, custom


def _guard(clock: FakeClock, *, renewed_ago: float) -> WriteGuard:
    guard = WriteGuard(clock=clock)
    guard.renewed(LeaderTerm(renew_started=clock.now - renewed_ago, duration_seconds=6, write_margin_seconds=1.5))
    return guard


def _writes(kube: Kube) -> list[Any]:
    return [
        kube.patch_status("nodefailovers", "nf-1", {"phase": "Fencing"}, resource_version="41"),
        kube.set_out_of_service_taint("node-1", present=True),
        kube.force_delete_pod("apps", "virt-launcher-db-1"),
        kube.create_nodefailover({"metadata": {"name": "nf-2"}}),
        kube.create_object(api_version="x.io/v1", plural="things", body={"metadata": {"name": "n"}}, namespace="ns"),
        kube.delete_object(api_version="x.io/v1", plural="things", name="n", namespace="ns"),
        remove_node_annotation_if(kube, "node-1", "kvha.io/fence-confirmed", "nf-1"),
    ]


def test_no_write_leaves_after_the_deadline() -> None:
    clock = FakeClock()
    kube, core, custom = _kube(_guard(clock, renewed_ago=4.5))  # 6 s lease - 1.5 s margin: just over
    for write in _writes(kube):
        with pytest.raises(LeadershipLost):
            asyncio.run(write)
    written = [m for m, _, _ in core.calls + custom.calls if not m.startswith(("read_", "get_"))]
    assert written == [], written


def test_writes_before_the_deadline_go_out_with_the_timeout() -> None:
    clock = FakeClock()
    kube, core, custom = _kube(_guard(clock, renewed_ago=4.4))
    for write in _writes(kube):
        asyncio.run(write)
    calls = core.calls + custom.calls
    assert {m for m, _, _ in calls} >= {"patch_cluster_custom_object_status", "patch_node", "delete_namespaced_pod"}
    assert all(kwargs.get("_request_timeout") == 1.5 for _, _, kwargs in calls), calls
    assert core.answers["delete_namespaced_pod"].released  # the unread Pod's connection goes back to the pool


def test_a_renewal_arms_the_guard_from_when_it_was_sent() -> None:
    """The standby may see our renewal as soon as it is sent: the term starts then, not when the
    (possibly slow) answer came back."""
    clock = FakeClock()
    leases = FakeLeases(None)
    cfg = LeaseConfig("kvha-system", "kvha-leader", "kvha-a", duration_seconds=6, request_timeout_seconds=1.5)
    elector = LeaderElector(NoClient(), cfg, clock=clock)  # type: ignore[arg-type]
    elector.api = leases  # type: ignore[assignment]

    def slow_create(namespace: str, body: dict[str, Any], **_: Any) -> None:
        clock.now += 1.0  # the create took a second to answer
        leases.obj = {"metadata": {"name": "kvha-leader", "resourceVersion": "1"}, "spec": body["spec"]}

    leases.create_namespaced_lease = slow_create  # type: ignore[attr-defined]
    assert not elector.guard.remaining() > 0, "no write before leadership is won"
    assert elector.try_acquire_or_renew()
    assert elector.guard.remaining() == pytest.approx(6 - 1.5 - 1.0)


def test_a_hung_renewal_does_not_stop_the_leader_noticing_its_deadline() -> None:
    leases = FakeLeases(None)
    cfg = LeaseConfig(
        "kvha-system",
        "kvha-leader",
        "kvha-a",
        duration_seconds=1,
        renew_every_seconds=0.05,
        request_timeout_seconds=0.5,
    )
    elector = LeaderElector(NoClient(), cfg)  # type: ignore[arg-type]
    elector.api = leases  # type: ignore[assignment]
    leases.create_namespaced_lease = lambda namespace, body, **_: setattr(  # type: ignore[attr-defined]
        leases, "obj", {"metadata": {"name": "kvha-leader", "resourceVersion": "1"}, "spec": body["spec"]}
    )
    assert elector.try_acquire_or_renew()
    network = threading.Event()
    leases.read_namespaced_lease = lambda *_, **__: network.wait()  # type: ignore[method-assign]  # blackholed

    async def hold() -> bool:
        lost = asyncio.Event()
        try:
            await asyncio.wait_for(elector.hold(lost), timeout=3)
        finally:
            network.set()  # let the abandoned renewal's thread end, or asyncio.run waits for it
        return lost.is_set()

    try:
        assert asyncio.run(hold())
        assert elector.guard.remaining() <= 0
        with pytest.raises(LeadershipLost):
            elector.guard.check()
    finally:
        network.set()


def test_lost_leadership_stops_the_actions_instead_of_being_reported_as_failed_ones() -> None:
    """A refused write is not an ActionFailed to post as an Event (another write) and carry on."""
    clock = FakeClock()
    kube, core, _ = _kube(_guard(clock, renewed_ago=5))
    restart = RestartVM(
        namespace="apps",
        name="db-1",
        vmi_name="db-1",
        vmi_uid="uid-1",
        from_node="node-1",
        launcher_pods=("virt-launcher-db-1",),
    )
    with pytest.raises(LeadershipLost):
        asyncio.run(execute(kube, [ApplyOutOfServiceTaint(node="node-1"), restart]))
    assert [m for m, _, _ in core.calls if not m.startswith("read_")] == []
