"""Detection: when a node counts as dead, when its incident may close, and what users are told.

Every duration is one kvha observed (`NodeSightings`: since when kvha has seen each value), never a
node's timestamp compared with kvha's clock.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from core.strategies import CLOCK, NOW, ago, make_lease, make_node, sightings
from kvha.detection import (
    Health,
    Instant,
    NodeSightings,
    Sighting,
    Sightings,
    assess_node,
    incident_can_close,
    last_heard_from,
)
from kvha.models.hapolicy import DetectionSpec, UnhealthyCondition
from kvha.models.views import LeaseView, NodeCondition, NodeView

DEFAULTS = DetectionSpec()  # Ready False/Unknown for 30s, lease stale after 40s, healthy delay 60s


def test_ready_unknown_past_its_duration_makes_the_node_unhealthy_and_says_so() -> None:
    verdict = assess_node(
        node=make_node("w1", ready="Unknown"),
        lease=make_lease("w1"),
        detection=DEFAULTS,
        seen=sightings(ready_for=42),
        now=CLOCK,
    )
    assert verdict.health is Health.UNHEALTHY
    assert verdict.reasons == ("Ready=Unknown for 42s",)
    assert verdict.detected_at == ago(12)  # seen Unknown 42s ago, crossed 30s later


def test_a_fresh_failure_signal_is_only_suspect_and_says_when_to_look_again() -> None:
    verdict = assess_node(
        node=make_node("w1", ready="Unknown"),
        lease=make_lease("w1"),
        detection=DEFAULTS,
        seen=sightings(ready_for=10),
        now=CLOCK,
    )
    assert verdict.health is Health.SUSPECT
    assert verdict.reasons == ("Ready=Unknown for 10s (unhealthy at 30s)",)
    assert verdict.recheck_after == 20
    assert verdict.detected_at is None


def test_a_stale_lease_is_enough_even_while_ready_still_says_true() -> None:
    verdict = assess_node(
        node=make_node("w1"), lease=make_lease("w1"), detection=DEFAULTS, seen=sightings(lease_ago=45), now=CLOCK
    )
    assert verdict.health is Health.UNHEALTHY
    assert verdict.reasons == ("Lease not renewed for 45s",)


def test_a_healthy_node_is_rechecked_when_its_lease_could_go_stale() -> None:
    """A dead kubelet stops producing watch events, so detection must wake itself up."""
    verdict = assess_node(
        node=make_node("w1"), lease=make_lease("w1"), detection=DEFAULTS, seen=sightings(lease_ago=4), now=CLOCK
    )
    assert verdict.health is Health.HEALTHY
    assert verdict.reasons == ()
    assert verdict.recheck_after == 36


def test_a_missing_lease_alone_is_not_a_failure() -> None:
    verdict = assess_node(node=make_node("w1"), lease=None, detection=DEFAULTS, seen=sightings(), now=CLOCK)
    assert verdict.health is Health.HEALTHY


def test_a_missing_lease_counts_once_the_node_is_not_ready_either() -> None:
    lease_only = DetectionSpec(unhealthy_conditions=[])
    verdict = assess_node(
        node=make_node("w1", ready="False"), lease=None, detection=lease_only, seen=sightings(ready_for=50), now=CLOCK
    )
    assert verdict.health is Health.UNHEALTHY
    assert verdict.reasons == ("no Lease in kube-node-lease and not Ready for 50s",)


def test_kubevirt_heartbeat_is_a_signal_only_when_configured() -> None:
    node = make_node("w1", kubevirt_heartbeat=ago(400))
    seen = sightings(kubevirt_ago=400)
    without = assess_node(node=node, lease=make_lease("w1"), detection=DEFAULTS, seen=seen, now=CLOCK)
    with_heartbeat = assess_node(
        node=node,
        lease=make_lease("w1"),
        detection=DetectionSpec(kubevirt_heartbeat_stale_after="5m"),
        seen=seen,
        now=CLOCK,
    )
    assert without.health is Health.HEALTHY
    assert with_heartbeat.health is Health.UNHEALTHY
    assert with_heartbeat.reasons == ("KubeVirt heartbeat not updated for 6m40s",)


def test_custom_conditions_count_like_ready() -> None:
    spec = DetectionSpec(unhealthy_conditions=[UnhealthyCondition(type="DiskPressure", status="True", duration="1m")])
    node = replace(
        make_node("w1"),
        conditions=(
            NodeCondition("Ready", "True", ago(3600), ago(5)),
            NodeCondition("DiskPressure", "True", ago(61), ago(5)),
        ),
    )
    verdict = assess_node(
        node=node, lease=make_lease("w1"), detection=spec, seen=sightings(conditions={"DiskPressure": 61}), now=CLOCK
    )
    assert verdict.health is Health.UNHEALTHY
    assert verdict.reasons == ("DiskPressure=True for 1m1s",)


def test_a_signal_kvha_has_no_sighting_of_counts_from_now() -> None:
    verdict = assess_node(
        node=make_node("w1", ready="Unknown"),
        lease=make_lease("w1"),
        detection=DEFAULTS,
        seen=NodeSightings(),
        now=CLOCK,
    )
    assert verdict.health is Health.SUSPECT
    assert verdict.recheck_after == 30


def test_an_incident_closes_only_after_ready_held_for_the_healthy_delay() -> None:
    lease, node = make_lease("w1"), make_node("w1")
    assert incident_can_close(node=node, lease=lease, detection=DEFAULTS, seen=sightings(ready_for=20), now=CLOCK) == (
        False,
        40,
    )
    assert incident_can_close(node=node, lease=lease, detection=DEFAULTS, seen=sightings(ready_for=61), now=CLOCK) == (
        True,
        None,
    )
    assert incident_can_close(
        node=make_node("w1", ready="Unknown"), lease=lease, detection=DEFAULTS, seen=sightings(ready_for=5), now=CLOCK
    ) == (False, None)


def test_last_heard_from_is_when_kvha_last_saw_a_sign_of_life() -> None:
    node = make_node("w1", ready="False", kubevirt_heartbeat=ago(30))
    seen = sightings(lease_ago=3, heartbeat_ago=50, kubevirt_ago=30)
    assert last_heard_from(node=node, lease=make_lease("w1"), seen=seen) == ago(3)
    assert last_heard_from(node=node, lease=None, seen=seen) == ago(30)
    assert last_heard_from(node=None, lease=None, seen=seen) is None


# --- observed time: what kvha saw, when ---------------------------------------------------------

START = Instant(monotonic=1_000.0, wall=NOW)
HEARTBEAT = DetectionSpec(kubevirt_heartbeat_stale_after="3m")


def at(offset: float) -> Instant:
    return Instant(monotonic=START.monotonic + offset, wall=START.wall + timedelta(seconds=offset))


def _alive_node(writes_at: float, *, skew: float) -> tuple[NodeView, LeaseView]:
    """The node's view of itself after its last write at `writes_at` s (kvha's time), as its own
    clock, off by `skew` s, stamps it."""
    stamp = NOW + timedelta(seconds=writes_at + skew)
    node = replace(
        make_node("w1", kubevirt_heartbeat=stamp),
        conditions=(NodeCondition("Ready", "True", NOW + timedelta(seconds=skew - 3600), stamp),),
    )
    return node, LeaseView("w1", stamp, 40)


@settings(max_examples=300, deadline=None)
@given(
    skew=st.floats(min_value=-3600, max_value=3600, allow_nan=False),
    silent_after=st.none() | st.integers(0, 300),
    judged_at=st.integers(0, 400),
)
def test_a_node_clock_skew_never_changes_the_verdict(skew: float, silent_after: int | None, judged_at: int) -> None:
    """A node whose clock runs N minutes ahead or behind is judged exactly like one whose clock is
    right: kvha sees the same changes at the same moments, whatever the timestamps say."""

    def verdict(skew: float) -> tuple[Health, tuple[str, ...]]:
        tracker = Sightings()
        tracker.mark_synced(at(0))
        for t in range(0, judged_at + 1, 2):  # the node writes every 2 s until it falls silent
            last_write = t if silent_after is None else min(t, silent_after)
            node, lease = _alive_node(last_write, skew=skew)
            tracker.observe_node(node, now=at(t))
            tracker.observe_lease(lease, now=at(t))
        node, lease = _alive_node(judged_at if silent_after is None else min(judged_at, silent_after), skew=skew)
        result = assess_node(node=node, lease=lease, detection=HEARTBEAT, seen=tracker.of("w1"), now=at(judged_at))
        return result.health, result.reasons

    assert verdict(skew) == verdict(0.0)


def test_a_node_clock_minutes_behind_is_healthy_while_it_keeps_writing() -> None:
    tracker = Sightings()
    tracker.mark_synced(at(0))
    for t in range(0, 600, 10):
        node, lease = _alive_node(t, skew=-240)
        tracker.observe_node(node, now=at(t))
        tracker.observe_lease(lease, now=at(t))
    node, lease = _alive_node(590, skew=-240)
    seen = tracker.of("w1")
    verdict = assess_node(node=node, lease=lease, detection=HEARTBEAT, seen=seen, now=at(595))
    assert verdict.health is Health.HEALTHY
    # The watchdog counts from when kvha last saw the node write, not from what the node wrote.
    assert last_heard_from(node=node, lease=lease, seen=seen) == at(590).wall


def test_a_node_s_sightings_read_between_changes_always_show_the_latest_change() -> None:
    """`of` keeps each node's NodeSightings until it changes (a policy evaluation reads every
    node's): each observed change, the sync and a forgotten node must drop the kept copy."""
    tracker = Sightings()
    tracker.observe_node(make_node("w1"), now=at(0))
    tracker.observe_lease(LeaseView("w1", NOW, 40), now=at(0))
    assert tracker.of("w1").lease == Sighting.of(at(0))
    tracker.mark_synced(at(5))
    assert tracker.of("w1").lease == Sighting.of(at(5))  # first seen before the sync: counts from it
    assert tracker.of("w1") is tracker.of("w1")
    tracker.observe_lease(LeaseView("w1", NOW + timedelta(seconds=10), 40), now=at(10))
    assert tracker.of("w1").lease == Sighting.of(at(10))
    tracker.observe_lease(LeaseView("w1", NOW + timedelta(seconds=10), 40), now=at(20))  # the same value
    assert tracker.of("w1").lease == Sighting.of(at(10))
    tracker.retain(())
    assert tracker.of("w1") == NodeSightings()


def test_a_value_first_seen_counts_from_first_sight() -> None:
    """After a restart, a Lease last renewed an hour ago (by the node's clock) is not stale yet:
    kvha has not seen it stay unchanged for long."""
    tracker = Sightings()
    tracker.mark_synced(at(0))
    lease = LeaseView("w1", NOW - timedelta(hours=1), 40)
    node = make_node("w1")
    tracker.observe_node(node, now=at(0))
    for t in (0, 10, 30):
        tracker.observe_lease(lease, now=at(t))  # the same value again: not a change

    def health(t: float) -> Health:
        return assess_node(node=node, lease=lease, detection=DEFAULTS, seen=tracker.of("w1"), now=at(t)).health

    assert health(10) is Health.HEALTHY
    assert health(25) is Health.SUSPECT
    assert health(40) is Health.UNHEALTHY


def test_a_value_seen_before_the_caches_synced_counts_from_the_sync() -> None:
    """The time spent catching up with the watches is the operator's lag, not the node's silence."""
    tracker = Sightings()
    tracker.observe_lease(make_lease("w1"), now=at(0))
    assert not tracker.synced
    tracker.mark_synced(at(200))
    assert tracker.synced
    assert tracker.of("w1").lease == Sighting.of(at(200))
    verdict = assess_node(
        node=make_node("w1"), lease=make_lease("w1"), detection=DEFAULTS, seen=tracker.of("w1"), now=at(210)
    )
    assert verdict.health is Health.HEALTHY


def test_a_change_read_fresh_from_the_api_makes_a_stale_looking_node_fresh() -> None:
    """The cache still holds the renewal of 45 s ago (the watch is behind); the Lease read from
    the API has a newer one, which is a change kvha observes now."""
    tracker = Sightings()
    tracker.mark_synced(at(0))
    node = make_node("w1")
    tracker.observe_node(node, now=at(0))
    tracker.observe_lease(LeaseView("w1", NOW, 40), now=at(0))
    stale = assess_node(node=node, lease=make_lease("w1"), detection=DEFAULTS, seen=tracker.of("w1"), now=at(45))
    assert stale.health is Health.UNHEALTHY
    tracker.observe_lease(LeaseView("w1", NOW + timedelta(seconds=44), 40), now=at(45))
    fresh = assess_node(node=node, lease=make_lease("w1"), detection=DEFAULTS, seen=tracker.of("w1"), now=at(45))
    assert fresh.health is Health.HEALTHY


def test_a_deleted_node_is_forgotten() -> None:
    tracker = Sightings()
    tracker.observe_lease(make_lease("w1"), now=at(0))
    tracker.observe_lease(make_lease("w2"), now=at(0))
    tracker.retain({"w2"})
    assert tracker.of("w1") == NodeSightings()
    assert tracker.of("w2").lease is not None


@settings(max_examples=200, deadline=None)
@given(
    outages=st.lists(st.integers(31, 300), min_size=2, max_size=8),
    recoveries=st.lists(st.integers(1, 59), min_size=8, max_size=8),
)
def test_a_flapping_node_keeps_one_incident_open(outages: list[int], recoveries: list[int]) -> None:
    """Ready flips Unknown (long enough to fail) → True (shorter than healthyDelay), again and again.

    A controller opening an incident on Unhealthy and closing it on `incident_can_close` must see
    one incident for the whole episode, and close it once the node stays up.
    """
    timeline: list[tuple[float, str]] = []  # (start offset, Ready status)
    offset = 0.0
    for outage, recovery in zip(outages, recoveries, strict=False):
        timeline += [(offset, "Unknown"), (offset + outage, "True")]
        offset += outage + recovery
    end = offset + 120  # finally up for two minutes
    start = NOW - timedelta(seconds=end)
    tracker = Sightings()
    tracker.mark_synced(at(0))
    incidents, open_incident = 0, False
    t = 0.0
    while t <= end:
        status, since = next((s, o) for o, s in reversed(timeline) if o <= t)
        now = start + timedelta(seconds=t)
        node = replace(
            make_node("w1"), conditions=(NodeCondition("Ready", status, start + timedelta(seconds=since), now),)
        )
        lease = LeaseView("w1", now - timedelta(seconds=2))
        tracker.observe_node(node, now=at(t))
        tracker.observe_lease(lease, now=at(t))
        seen = tracker.of("w1")
        verdict = assess_node(node=node, lease=lease, detection=DEFAULTS, seen=seen, now=at(t))
        if not open_incident and verdict.health is Health.UNHEALTHY:
            incidents, open_incident = incidents + 1, True
        elif open_incident and incident_can_close(node=node, lease=lease, detection=DEFAULTS, seen=seen, now=at(t))[0]:
            open_incident = False
        t += 5
    assert incidents == 1
    assert not open_incident
