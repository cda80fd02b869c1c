"""Argo CD: the Application example is sound, and the health checks in argocd-cm.yaml give the
right verdicts. The Lua runs in lupa the way Argo CD runs it: the object is the global `obj`
(a Lua table), the script returns {status=..., message=...}, and no os/io library is available.
"""

from __future__ import annotations

from typing import Any

import lupa
import pytest
import yaml

from install_testing import ROOT
from kvha.constants import COND_FAILOVER_CAPACITY, COND_READY, COND_STORM_GUARD

ARGOCD = ROOT / "deploy" / "argocd"
HAPOLICY_KEY = "resource.customizations.health.kvha.io_HAPolicy"
NODEFAILOVER_KEY = "resource.customizations.health.kvha.io_NodeFailover"


def _health(key: str, obj: dict[str, Any]) -> dict[str, str]:
    script = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())["data"][key]
    lua = lupa.LuaRuntime(unpack_returned_tuples=True, register_eval=False)
    for unsafe in ("os", "io", "require", "dofile", "loadfile"):
        lua.globals()[unsafe] = None  # Argo CD's sandbox has none of these
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(script)
    return dict(result.items())


def _policy(
    *conditions: tuple[str, str], generation: int = 1, observed: int | None = 1, status: bool = True
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "kvha.io/v1alpha1",
        "kind": "HAPolicy",
        "metadata": {"name": "p", "generation": generation},
    }
    if status:
        obj["status"] = {
            "protectedVms": 12,
            "conditions": [
                {"type": kind, "status": value, "reason": f"{kind}{value}", "message": f"{kind} is {value}"}
                for kind, value in conditions
            ],
        }
        if observed is not None:
            obj["status"]["observedGeneration"] = observed
    return obj


@pytest.mark.parametrize(
    ("obj", "status", "message"),
    [
        (_policy(status=False), "Progressing", "Waiting for kvha"),
        (_policy((COND_READY, "True"), generation=2, observed=1), "Progressing", "latest spec"),
        (_policy((COND_READY, "Unknown")), "Progressing", "Waiting for kvha"),
        (
            _policy((COND_READY, "True"), (COND_FAILOVER_CAPACITY, "True"), (COND_STORM_GUARD, "False")),
            "Healthy",
            "Protecting 12 VM(s)",
        ),
        (_policy((COND_READY, "True")), "Healthy", "Protecting 12 VM(s)"),
        (_policy((COND_READY, "False")), "Degraded", "Ready is False"),
        (
            _policy((COND_READY, "True"), (COND_FAILOVER_CAPACITY, "False")),
            "Degraded",
            "Insufficient failover capacity: FailoverCapacitySufficient is False",
        ),
        (_policy((COND_READY, "True"), (COND_STORM_GUARD, "True")), "Degraded", "Storm guard active"),
    ],
    ids=[
        "no-status",
        "stale-generation",
        "ready-unknown",
        "healthy",
        "healthy-no-capacity-yet",
        "invalid",
        "capacity-short",
        "storm",
    ],
)
def test_hapolicy_health(obj: dict[str, Any], status: str, message: str) -> None:
    health = _health(HAPOLICY_KEY, obj)
    assert health["status"] == status
    assert message in health["message"]


def _failover(phase: str | None, *, waiting: int = 0, message: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "kvha.io/v1alpha1",
        "kind": "NodeFailover",
        "metadata": {"name": "worker-1-x"},
        "spec": {"nodeName": "worker-1"},
    }
    if phase is not None:
        obj["status"] = {"phase": phase, "total": 4, "restored": 2, "waiting": waiting}
        if message:
            obj["status"]["message"] = message
    return obj


@pytest.mark.parametrize(
    ("obj", "status", "message"),
    [
        (_failover(None), "Progressing", "waiting for kvha"),
        (_failover("Detected"), "Progressing", "Detected: 2/4 VM(s) of node worker-1 restored"),
        (_failover("Fencing"), "Progressing", "Fencing"),
        (_failover("Fenced"), "Progressing", "Fenced"),
        (_failover("Restarting"), "Progressing", "Restarting"),
        (_failover("Restarting", waiting=2), "Degraded", "2 VM(s) of node worker-1 waiting for capacity"),
        (_failover("Completed"), "Healthy", "completed; 2/4 VM(s) restored"),
        (_failover("Aborted", message="node recovered before fencing"), "Healthy", "node recovered"),
        (_failover("Aborted"), "Healthy", "aborted"),
        (_failover("Failed", message="fencing timed out"), "Degraded", "fencing timed out"),
        (_failover("Paused"), "Unknown", "Unknown phase Paused"),
    ],
)
def test_nodefailover_health(obj: dict[str, Any], status: str, message: str) -> None:
    health = _health(NODEFAILOVER_KEY, obj)
    assert health["status"] == status
    assert message in health["message"]


def test_every_phase_has_a_verdict() -> None:
    from kvha.models.nodefailover import FailoverPhase  # noqa: PLC0415

    for phase in FailoverPhase:
        assert _health(NODEFAILOVER_KEY, _failover(phase.value))["status"] != "Unknown", phase


def test_application_suits_crds() -> None:
    app = yaml.safe_load((ARGOCD / "application.yaml").read_text())
    assert app["kind"] == "Application"
    assert app["spec"]["source"]["path"] == "charts/kvha"
    assert app["spec"]["destination"]["namespace"] == "kvha-system"
    options = app["spec"]["syncPolicy"]["syncOptions"]
    assert "ServerSideApply=true" in options
    assert "RespectIgnoreDifferences=true" in options
    ignored = {(d["kind"], d.get("name")) for d in app["spec"]["ignoreDifferences"]}
    assert ("CustomResourceDefinition", "hapolicies.kvha.io") in ignored
    assert ("HAPolicy", None) in ignored
    # Values given to the chart must pass its schema: render them.
    values = app["spec"]["source"]["helm"]["valuesObject"]
    assert set(values) <= set(yaml.safe_load((ROOT / "charts" / "kvha" / "values.yaml").read_text()))
