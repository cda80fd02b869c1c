"""Detection: when a node counts as dead, when its incident may close, and what users are told."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from core.strategies import NOW, ago, make_lease, make_node
from kvha.detection import Health, assess_node, incident_can_close, last_heard_from
from kvha.models.hapolicy import DetectionSpec, UnhealthyCondition
from kvha.models.views import LeaseView, NodeCondition

DEFAULTS = DetectionSpec()  # Ready False/Unknown for 30s, lease stale after 40s, healthy delay 60s


def test_ready_unknown_past_its_duration_makes_the_node_unhealthy_and_says_so() -> None:
    verdict = assess_node(
        node=make_node("w1", ready="Unknown", ready_for=42), lease=make_lease("w1"), detection=DEFAULTS, now=NOW
    )
    assert verdict.health is Health.UNHEALTHY
    assert verdict.reasons == ("Ready=Unknown for 42s",)
    assert verdict.unhealthy_since == ago(12)  # went Unknown 42s ago, crossed 30s later


def test_a_fresh_failure_signal_is_only_suspect_and_says_when_to_look_again() -> None:
    verdict = assess_node(
        node=make_node("w1", ready="Unknown", ready_for=10), lease=make_lease("w1"), detection=DEFAULTS, now=NOW
    )
    assert verdict.health is Health.SUSPECT
    assert verdict.reasons == ("Ready=Unknown for 10s (unhealthy at 30s)",)
    assert verdict.recheck_after == 20
    assert verdict.unhealthy_since is None


def test_a_stale_lease_is_enough_even_while_ready_still_says_true() -> None:
    verdict = assess_node(node=make_node("w1"), lease=make_lease("w1", renewed_ago=45), detection=DEFAULTS, now=NOW)
    assert verdict.health is Health.UNHEALTHY
    assert verdict.reasons == ("Lease not renewed for 45s",)


def test_a_healthy_node_is_rechecked_when_its_lease_could_go_stale() -> None:
    """A dead kubelet stops producing watch events, so detection must wake itself up."""
    verdict = assess_node(node=make_node("w1"), lease=make_lease("w1", renewed_ago=4), detection=DEFAULTS, now=NOW)
    assert verdict.health is Health.HEALTHY
    assert verdict.reasons == ()
    assert verdict.recheck_after == 36


def test_a_missing_lease_alone_is_not_a_failure() -> None:
    verdict = assess_node(node=make_node("w1"), lease=None, detection=DEFAULTS, now=NOW)
    assert verdict.health is Health.HEALTHY


def test_a_missing_lease_counts_once_the_node_is_not_ready_either() -> None:
    lease_only = DetectionSpec(unhealthy_conditions=[])
    verdict = assess_node(node=make_node("w1", ready="False", ready_for=50), lease=None, detection=lease_only, now=NOW)
    assert verdict.health is Health.UNHEALTHY
    assert verdict.reasons == ("no Lease in kube-node-lease and not Ready for 50s",)


def test_kubevirt_heartbeat_is_a_signal_only_when_configured() -> None:
    node = make_node("w1", kubevirt_heartbeat=ago(400))
    without = assess_node(node=node, lease=make_lease("w1"), detection=DEFAULTS, now=NOW)
    with_heartbeat = assess_node(
        node=node, lease=make_lease("w1"), detection=DetectionSpec(kubevirt_heartbeat_stale_after="5m"), now=NOW
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
    verdict = assess_node(node=node, lease=make_lease("w1"), detection=spec, now=NOW)
    assert verdict.health is Health.UNHEALTHY
    assert verdict.reasons == ("DiskPressure=True for 1m1s",)


def test_a_node_clock_ahead_of_ours_does_not_count_as_negative_time() -> None:
    node = make_node("w1", ready="Unknown", ready_for=-30)
    verdict = assess_node(node=node, lease=make_lease("w1"), detection=DEFAULTS, now=NOW)
    assert verdict.health is Health.SUSPECT
    assert verdict.recheck_after == 30


def test_an_incident_closes_only_after_ready_held_for_the_healthy_delay() -> None:
    lease = make_lease("w1")
    assert incident_can_close(node=make_node("w1", ready_for=20), lease=lease, detection=DEFAULTS, now=NOW) == (
        False,
        40,
    )
    assert incident_can_close(node=make_node("w1", ready_for=61), lease=lease, detection=DEFAULTS, now=NOW) == (
        True,
        None,
    )
    assert incident_can_close(
        node=make_node("w1", ready="Unknown", ready_for=5), lease=lease, detection=DEFAULTS, now=NOW
    ) == (False, None)


def test_last_heard_from_is_the_latest_sign_of_life() -> None:
    node = make_node("w1", ready="False", heartbeat_ago=50, kubevirt_heartbeat=ago(30))
    assert last_heard_from(node=node, lease=make_lease("w1", renewed_ago=3)) == ago(3)
    assert last_heard_from(node=node, lease=None) == ago(30)
    assert last_heard_from(node=None, lease=None) is None


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
    incidents, open_incident = 0, False
    t = 0.0
    while t <= end:
        status, since = next((s, o) for o, s in reversed(timeline) if o <= t)
        now = start + timedelta(seconds=t)
        node = replace(
            make_node("w1"), conditions=(NodeCondition("Ready", status, start + timedelta(seconds=since), now),)
        )
        lease = LeaseView("w1", now - timedelta(seconds=2))
        verdict = assess_node(node=node, lease=lease, detection=DEFAULTS, now=now)
        if not open_incident and verdict.health is Health.UNHEALTHY:
            incidents, open_incident = incidents + 1, True
        elif open_incident and incident_can_close(node=node, lease=lease, detection=DEFAULTS, now=now)[0]:
            open_incident = False
        t += 5
    assert incidents == 1
    assert not open_incident
