"""What wakes the policy and incident daemons: a change they read, their recheck, or a stop; and the
policy's detection never waiting for its admission control."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from core.strategies import make_node
from handler_fakes import FakeKube, indices, observed

from kvha.constants import COND_FAILOVER_CAPACITY
from kvha.handlers import policies, rhythm
from kvha.handlers.freshness import FreshRead, clock
from kvha.handlers.rhythm import CloseWatch, Signal, mark, pause
from kvha.k8s.informer import Resource
from kvha.reconcile import AdmissionSnapshot


class Stop:
    """kopf's DaemonStopped as an async daemon uses it: falsy until set, `await stopped.wait(t)`."""

    def __init__(self) -> None:
        self.flag = asyncio.Event()

    def __bool__(self) -> bool:
        return self.flag.is_set()

    def wait(self, timeout: float | None = None) -> Awaitable[None]:
        async def waiting() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flag.wait(), timeout)

        return waiting()


def _timed(scenario: Callable[[Stop], Awaitable[None]]) -> float:
    async def run() -> float:
        stop = Stop()
        started = time.monotonic()
        await scenario(stop)
        return time.monotonic() - started

    return asyncio.run(run())


def test_a_change_wakes_the_daemon_before_its_recheck() -> None:
    signal = Signal("test")

    async def scenario(stop: Stop) -> None:
        since = mark([signal])
        asyncio.get_running_loop().call_later(0.2, signal.bump)
        await pause([signal], since, recheck_after=30, min_interval=0.05, stopped=stop)  # type: ignore[arg-type]

    assert 0.15 < _timed(scenario) < 2


def test_without_a_change_the_daemon_sleeps_until_its_recheck() -> None:
    signal = Signal("test")

    async def scenario(stop: Stop) -> None:
        await pause([signal], mark([signal]), recheck_after=0.4, min_interval=0.05, stopped=stop)  # type: ignore[arg-type]

    assert 0.35 < _timed(scenario) < 2


def test_a_burst_of_changes_makes_one_step_per_min_interval() -> None:
    """A change already there when the step ends still waits out `min_interval`: 100 VMIs changing
    during an incident are one step, not 100."""
    signal = Signal("test")

    async def scenario(stop: Stop) -> None:
        since = mark([signal])
        for _ in range(100):
            signal.bump()
        await pause([signal], since, recheck_after=30, min_interval=0.3, stopped=stop)  # type: ignore[arg-type]

    assert 0.25 < _timed(scenario) < 2


def test_a_stop_ends_the_pause_at_once() -> None:
    signal = Signal("test")

    async def scenario(stop: Stop) -> None:
        asyncio.get_running_loop().call_later(0.1, stop.flag.set)
        await pause([signal], mark([signal]), recheck_after=None, min_interval=5, stopped=stop)  # type: ignore[arg-type]

    assert _timed(scenario) < 2


def test_a_healthy_nodes_renewal_wakes_nothing_a_watched_nodes_does(monkeypatch: pytest.MonkeyPatch) -> None:
    watch = CloseWatch()
    monkeypatch.setattr(rhythm, "CLOSE_WATCH", watch)
    before = rhythm.DETECTION.version
    rhythm._lease_watcher({"metadata": {"name": "healthy-1"}})
    assert rhythm.DETECTION.version == before
    watch.set("HAPolicy/production", {"suspect-1"})
    rhythm._lease_watcher({"metadata": {"name": "suspect-1"}})
    assert rhythm.DETECTION.version == before + 1
    watch.set("HAPolicy/production", ())
    rhythm._lease_watcher({"metadata": {"name": "suspect-1"}})
    assert rhythm.DETECTION.version == before + 1, "a daemon's emptied set must stop the wake-ups"
    rhythm._lease_watcher(None)
    assert rhythm.DETECTION.version == before + 2, "a relist may hide any change"


def test_every_cache_that_feeds_a_decision_wakes_a_daemon() -> None:
    import kvha.handlers  # noqa: F401, PLC0415 - registers the caches and connects the signals

    for resource, cache in rhythm.CACHES.by_resource.items():
        assert cache.watchers, f"a change of {resource} would wake no daemon"
    with pytest.raises(LookupError):
        rhythm._known(Resource("", "v1", "secrets"))


def test_admission_control_runs_again_only_when_its_inputs_changed_and_not_too_often() -> None:
    control = policies.AdmissionControl()
    assert control.due_in(("w1",), now=100.0) == 0.0, "the first one runs at once"
    control.inputs, control.started, control.result = ("w1",), 100.0, policies.Admission()
    assert control.due_in(("w1",), now=101.0) is None, "nothing changed"
    assert control.due_in(("w2",), now=101.0) == pytest.approx(policies.ADMISSION_INTERVAL - 1)
    assert control.due_in(("w2",), now=100.0 + policies.ADMISSION_INTERVAL) == 0.0


NODE = "host-1"


def test_detection_opens_an_incident_while_admission_control_is_still_running(monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = {
        NODE: make_node(NODE, ready="Unknown", ready_for=600),
        **{name: make_node(name) for name in ("host-2", "host-3")},
    }
    seen = observed(nodes.values(), seen_for=600)
    monkeypatch.setattr(policies, "SIGHTINGS", seen)
    monkeypatch.setattr(policies.events, "post", lambda *_, **__: None)

    async def read_fresh(_kube: Any, name: str) -> FreshRead:  # the API agrees with the cache
        return FreshRead(node=nodes[name], lease=None, seen=seen.of(name), now=clock())

    monkeypatch.setattr(policies, "read_fresh", read_fresh)
    ix = indices(node_index=nodes)
    monkeypatch.setattr(policies.Indices, "current", classmethod(lambda cls: cls.of(ix)))
    gate = threading.Event()
    real = policies.assess_admission

    def slow_admission(snap: AdmissionSnapshot) -> policies.Admission:
        assert gate.wait(10), "never released"
        return real(snap)

    monkeypatch.setattr(policies, "assess_admission", slow_admission)
    kube = FakeKube()
    body: dict[str, Any] = {
        "metadata": {"name": "production", "resourceVersion": "7", "generation": 1},
        "spec": {},
        "status": {},
    }
    memo = SimpleNamespace(kube=kube, setdefault=lambda _key, default: default)

    async def scenario() -> None:
        control = policies.AdmissionControl()
        await policies.evaluate(name="production", body=body, memo=memo, admission=control)
        assert [a for a, _ in kube.actions] == ["create_nodefailover"], "detection waited for admission control"
        assert control.running is not None
        assert not control.running.done()
        first = kube.statuses[-1]
        assert COND_FAILOVER_CAPACITY not in {c["type"] for c in first["conditions"]}
        gate.set()
        await control.running
        body["status"], body["metadata"]["resourceVersion"] = first, "8"
        await policies.evaluate(name="production", body=body, memo=memo, admission=control)
        assert COND_FAILOVER_CAPACITY in {c["type"] for c in kube.statuses[-1]["conditions"]}

    asyncio.run(scenario())


def _node(name: str, *, ready: str = "True", heartbeat: str = "2026-12-03T10:00:00Z") -> dict[str, Any]:
    condition = {
        "type": "Ready",
        "status": ready,
        "lastTransitionTime": "2026-12-03T09:00:00Z",
        "lastHeartbeatTime": heartbeat,
    }
    return {"metadata": {"name": name}, "status": {"conditions": [condition]}}


def test_a_healthy_nodes_status_heartbeat_wakes_nothing_a_ready_flip_does(monkeypatch: pytest.MonkeyPatch) -> None:
    watch = CloseWatch()
    monkeypatch.setattr(rhythm, "CLOSE_WATCH", watch)
    monkeypatch.setattr(rhythm, "_NODE_SHAPES", {})
    rhythm._node_watcher(_node("w1"))
    before = rhythm.DETECTION.version
    rhythm._node_watcher(_node("w1", heartbeat="2026-12-03T10:00:10Z"))
    assert rhythm.DETECTION.version == before, "a heartbeat of a Healthy node changes no verdict"
    rhythm._node_watcher(_node("w1", ready="Unknown", heartbeat="2026-12-03T10:00:10Z"))
    assert rhythm.DETECTION.version == before + 1
    watch.set("NodeFailover/nf-1", {"w1"})
    rhythm._node_watcher(_node("w1", ready="Unknown", heartbeat="2026-12-03T10:00:20Z"))
    assert rhythm.DETECTION.version == before + 2, "a watched node's heartbeat may end its silence"


def test_a_policy_created_again_under_its_name_is_parsed_again() -> None:
    from kvha.handlers.snapshot import ParsedPolicies  # noqa: PLC0415 - only this test needs it

    parsed = ParsedPolicies()
    first = parsed.parse("p", {"spec": {"restart": {"maxParallel": 3}}, "generation": 1})
    again = parsed.parse("p", {"spec": {"restart": {"maxParallel": 7}}, "generation": 1})
    assert first is not None
    assert again is not None
    assert (first.restart.max_parallel, again.restart.max_parallel) == (3, 7)
