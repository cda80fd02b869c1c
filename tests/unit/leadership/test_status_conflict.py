"""Status writes carry the resourceVersion they were computed from; a conflict skips the step.

The bug this pins: a tick computed from a copy older than the stored NodeFailover (its own
previous write not yet seen through the watch) overwrote `taintApplied`, and then acted on it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from core.strategies import make_node
from handler_fakes import FakeKube, indices, observed
from kubernetes.client.exceptions import ApiException

from kvha.handlers import failovers
from kvha.handlers.freshness import FreshRead, clock
from kvha.k8s.api import Kube
from kvha.models.timeutil import format_micro_time, utcnow

from .fakes import NoClient, Recorder

NODE = "host-1"
POLICY = "production"


def _tick(kube: FakeKube, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(failovers.events, "post", lambda *_, **__: None)
    monkeypatch.setattr(failovers.kopf, "warn", lambda *_, **__: None)
    nodes = {
        NODE: make_node(NODE, ready="Unknown", ready_for=600, fence_confirmed="nf-1"),
        # Two healthy hosts besides the dead one: one of three is below the storm guard's limit.
        **{name: make_node(name) for name in ("host-2", "host-3")},
    }
    seen = observed(nodes.values(), seen_for=600)
    monkeypatch.setattr(failovers, "SIGHTINGS", seen)

    async def read_fresh(_kube: Any, name: str) -> FreshRead:  # the API agrees with the cache
        return FreshRead(node=nodes[name], lease=None, seen=seen.of(name), now=clock())

    monkeypatch.setattr(failovers, "read_fresh", read_fresh)
    policy = {"fencing": {"strategy": "OutOfServiceTaint", "confirmation": "Manual"}}
    spec = {
        "nodeName": NODE,
        "policyName": POLICY,
        "detectedAt": format_micro_time(utcnow() - timedelta(seconds=60)),
        "reason": "Ready=Unknown for 60s",
    }
    body = {"metadata": {"name": "nf-1", "uid": "uid-nf-1", "resourceVersion": "41"}, "spec": spec, "status": {}}
    ix = indices(node_index=nodes, policy_index={POLICY: {"spec": policy, "status": {}, "generation": 1}})
    monkeypatch.setattr(failovers.Indices, "current", classmethod(lambda cls: cls.of(ix)))
    asyncio.run(
        failovers.advance(name="nf-1", body=body, spec=spec, status=body["status"], memo=SimpleNamespace(kube=kube))
    )


def test_a_step_acts_only_after_its_status_is_written(monkeypatch: pytest.MonkeyPatch) -> None:
    kube = FakeKube(conflict=False)
    _tick(kube, monkeypatch)
    assert kube.status_writes == [("nf-1", "41")], "the write names the version it was computed from"
    assert ("taint", (NODE, True)) in kube.actions, kube.actions


def test_a_conflicting_status_write_skips_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    kube = FakeKube(conflict=True)
    _tick(kube, monkeypatch)
    assert kube.status_writes == [("nf-1", "41")]
    assert kube.actions == [], "acted on a step computed from an outdated copy"


def test_the_adapter_sends_the_version_as_a_precondition_and_reports_a_conflict() -> None:
    kube = Kube(NoClient())  # type: ignore[arg-type]
    custom = Recorder()
    kube.custom = custom  # type: ignore[assignment]
    assert asyncio.run(kube.patch_status("nodefailovers", "nf-1", {"phase": "Fenced"}, resource_version="41"))
    [(_, args, _)] = custom.calls
    assert args[-1] == {"metadata": {"resourceVersion": "41"}, "status": {"phase": "Fenced"}}
    custom.patch_cluster_custom_object_status = _raise_409  # type: ignore[method-assign]
    assert not asyncio.run(kube.patch_status("nodefailovers", "nf-1", {"phase": "Fenced"}, resource_version="40"))


def _raise_409(*_: Any, **__: Any) -> None:
    raise ApiException(status=409, reason="Conflict")
