"""Lease expiry as client-go judges it: by when this replica saw the record change, on its own
monotonic clock; the holder's renewTime is never compared with our wall clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kvha.k8s.leader import LeaderElector, LeaseConfig
from kvha.models.timeutil import format_micro_time, utcnow

from .fakes import FakeClock, FakeLeases, NoClient


def _standby(leases: FakeLeases, clock: FakeClock) -> LeaderElector:
    elector = LeaderElector(NoClient(), LeaseConfig("kvha-system", "kvha-leader", "kvha-b"), clock=clock)  # type: ignore[arg-type]
    elector.api = leases  # type: ignore[assignment]  # the fake stands in for the API server
    return elector


def _held_by_skewed_leader(behind: float) -> dict[str, Any]:
    stamp = format_micro_time(utcnow() - timedelta(seconds=behind))
    return {
        "holderIdentity": "kvha-a",
        "leaseDurationSeconds": 15,
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": 0,
    }


def test_a_live_leader_whose_clock_is_12s_behind_keeps_its_lease() -> None:
    leases = FakeLeases(_held_by_skewed_leader(behind=12))
    clock = FakeClock()
    standby = _standby(leases, clock)
    for _ in range(6):  # 30 s of the leader renewing every 5 s, its renewTime always 12 s "old"
        assert not standby.try_acquire_or_renew(), "took the Lease of a leader that renews on time"
        clock.now += 5
        leases.renew_as_holder(holder_clock_behind=12)
    assert leases.obj is not None
    assert leases.obj["spec"]["holderIdentity"] == "kvha-a"


def test_a_silent_leader_loses_its_lease_one_duration_after_we_last_saw_it_change() -> None:
    # A holder whose clock runs ahead: its renewTime says "fresh" long after it went silent.
    leases = FakeLeases(_held_by_skewed_leader(behind=-3600))
    clock = FakeClock()
    standby = _standby(leases, clock)
    assert not standby.try_acquire_or_renew()  # first sight of the record starts our clock
    clock.now += 14.9
    assert not standby.try_acquire_or_renew()
    clock.now += 0.1
    assert standby.try_acquire_or_renew(), "a record unchanged for a whole lease duration is free"
    assert leases.obj is not None
    assert leases.obj["spec"]["holderIdentity"] == "kvha-b"
    assert leases.obj["spec"]["leaseTransitions"] == 1


def test_every_lease_request_carries_the_timeout() -> None:
    leases = FakeLeases(_held_by_skewed_leader(behind=0))
    clock = FakeClock()
    standby = _standby(leases, clock)
    standby.try_acquire_or_renew()
    clock.now += 20
    standby.try_acquire_or_renew()
    assert leases.timeouts
    assert all(t == standby.cfg.request_timeout_seconds for t in leases.timeouts), leases.timeouts
