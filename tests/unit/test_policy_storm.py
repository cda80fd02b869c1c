"""The storm guard as the policy reconcile restores it from status: it must lift after the cooldown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kvha.models.base import Condition
from kvha.models.hapolicy import HAPolicySpec, HAPolicyStatus
from kvha.models.views import NodeCondition, NodeView
from kvha.reconcile import PolicySnapshot, evaluate_policy

ENDED = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _healthy(name: str) -> NodeView:
    ready = NodeCondition("Ready", "True", ENDED - timedelta(hours=1), ENDED)
    return NodeView(
        name=name,
        conditions=(ready,),
        allocatable_cpu_millis=8000,
        allocatable_memory_bytes=2**35,
        labels={"kubevirt.io/schedulable": "true"},
    )


def _after_storm(now: datetime) -> HAPolicyStatus:
    cooling = Condition(
        type="StormGuardActive",
        status="True",
        reason="TooManyUnhealthyNodes",
        message="cooling down",
        last_transition_time=ENDED - timedelta(minutes=2),
    )
    status = HAPolicyStatus(conditions=[cooling], storm_ended_at=ENDED)
    snap = PolicySnapshot(
        name="p",
        generation=1,
        policy=HAPolicySpec.model_validate({"stormGuard": {"cooldown": "5m"}}),
        invalid_message=None,
        status=status,
        nodes=[_healthy(f"n{i}") for i in range(3)],
        leases={},
        admission=None,
        failovers=[],
        now=now,
        monotonic=(now - ENDED).total_seconds(),
        sightings={},
        caches_synced=True,
    )
    return evaluate_policy(snap).status


def _storm(status: HAPolicyStatus) -> str:
    return next(c.status for c in status.conditions if c.type == "StormGuardActive")


def test_the_cooldown_counts_from_the_end_of_the_storm_and_then_lifts() -> None:
    during = _after_storm(ENDED + timedelta(minutes=1))
    assert _storm(during) == "True"
    assert during.storm_ended_at == ENDED, "re-evaluating during the cooldown must not restart it"
    assert _storm(_after_storm(ENDED + timedelta(minutes=6))) == "False"
