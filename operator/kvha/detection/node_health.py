"""Is this node dead? Each failure signal is timed against its threshold.

Three kinds of signal, any one of which is enough (as in node-healthcheck-operator, whose
`unhealthyConditions` this mirrors):

* a node condition from `detection.unhealthyConditions` (Ready=Unknown, Ready=False, …) that has
  held for its duration;
* the node's Lease in kube-node-lease not renewed for `leaseStaleAfter`. The kubelet renews it
  every 10 s, so a stale Lease notices a dead kubelet before the node-lifecycle controller flips
  Ready (40 s grace) — but a *missing* Lease is only a signal when Ready is not True too, because a
  cluster may run with leases disabled or the Lease may not be in our cache yet;
* virt-handler's `kubevirt.io/heartbeat` annotation unchanged for `kubevirtHeartbeatStaleAfter`
  (KubeVirt's own `isNodeUnresponsive`), when configured. A node without the annotation runs no
  virt-handler and hosts no VMs, so the missing annotation is not a signal.

Every duration is the time since kvha *observed* the value change (`kvha.detection.observed`), on
kvha's monotonic clock; the timestamps inside the values come from the node's clock and are never
compared with ours, so a node whose clock is minutes off is judged exactly like one whose clock is
right.

A signal that is present but younger than its threshold makes the node Suspect; the handler is
told when to look again. Hysteresis lives in `incident_can_close`: an incident closes only after
Ready=True has held for `healthyDelay`, so a flapping node keeps one incident open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from kvha.constants import COND_READY
from kvha.detection.observed import Instant, NodeSightings, Sighting
from kvha.detection.verdict import Health, Verdict
from kvha.models.durations import format_seconds, seconds
from kvha.models.hapolicy import DetectionSpec, HAPolicySpec
from kvha.models.views import LeaseView, NodeView

# A lease or heartbeat counts as "late" (Suspect) once half its staleness threshold has passed:
# the kubelet renews every quarter of the lease duration, so by then it has missed a renewal.
_LATE_FRACTION = 0.5


@dataclass(frozen=True, slots=True)
class _Signal:
    """A failure signal, unchanged since `since`: Suspect after `suspect_after` s, Unhealthy after `threshold` s."""

    description: str
    since: Sighting
    threshold: float
    suspect_after: float = 0.0


def _first_seen(sighting: Sighting | None, now: Instant) -> Sighting:
    # A value without a sighting has not been observed yet: counting from `now` keeps it Suspect
    # (visible, re-checked) rather than acting on a guess.
    return sighting if sighting is not None else Sighting.of(now)


def _condition_signals(node: NodeView, detection: DetectionSpec, seen: NodeSightings, now: Instant) -> list[_Signal]:
    signals = []
    for rule in detection.unhealthy_conditions:
        condition = node.condition(rule.type)
        if condition is None or condition.status != rule.status:
            continue
        since = _first_seen(seen.conditions.get(rule.type), now)
        signals.append(_Signal(f"{rule.type}={rule.status}", since, seconds(rule.duration)))
    return signals


def _lease_signal(
    node: NodeView, lease: LeaseView | None, detection: DetectionSpec, seen: NodeSightings, now: Instant
) -> _Signal | None:
    if detection.lease_stale_after is None:
        return None
    threshold = seconds(detection.lease_stale_after)
    if lease is not None and lease.renew_time is not None:
        since = _first_seen(seen.lease, now)
        return _Signal("Lease not renewed", since, threshold, threshold * _LATE_FRACTION)
    ready = node.condition(COND_READY)
    if ready is None or ready.status == "True":
        return None
    since = _first_seen(seen.conditions.get(COND_READY), now)
    return _Signal("no Lease in kube-node-lease and not Ready", since, threshold)


def _heartbeat_signal(node: NodeView, detection: DetectionSpec, seen: NodeSightings, now: Instant) -> _Signal | None:
    if detection.kubevirt_heartbeat_stale_after is None or node.kubevirt_heartbeat is None:
        return None
    threshold = seconds(detection.kubevirt_heartbeat_stale_after)
    since = _first_seen(seen.kubevirt_heartbeat, now)
    return _Signal("KubeVirt heartbeat not updated", since, threshold, threshold * _LATE_FRACTION)


def assess_node(
    *, node: NodeView, lease: LeaseView | None, detection: DetectionSpec, seen: NodeSightings, now: Instant
) -> Verdict:
    """Healthy, Suspect or Unhealthy, with the signals that decided it and when to look again.

    `seen` says since when kvha has observed each signal's current value; the timestamps inside
    `node` and `lease` are never compared with `now`.
    """
    signals = _condition_signals(node, detection, seen, now)
    signals += [
        s
        for s in (_lease_signal(node, lease, detection, seen, now), _heartbeat_signal(node, detection, seen, now))
        if s
    ]
    crossed: list[tuple[datetime, str]] = []
    suspect: list[str] = []
    waits: list[float] = []
    for signal in signals:
        elapsed = signal.since.age(now)
        if elapsed >= signal.threshold:
            crossed.append(
                (
                    # On kvha's wall clock, from the recorded sighting, so that every evaluation
                    # of one spell of ill health gives the same moment (it names the incident).
                    signal.since.wall + timedelta(seconds=signal.threshold),
                    f"{signal.description} for {format_seconds(elapsed)}",
                )
            )
            continue
        waits.append(signal.threshold - elapsed)
        if elapsed >= signal.suspect_after:
            suspect.append(
                f"{signal.description} for {format_seconds(elapsed)} (unhealthy at {format_seconds(signal.threshold)})"
            )
    if crossed:
        crossed.sort()
        return Verdict(Health.UNHEALTHY, tuple(reason for _, reason in crossed), detected_at=crossed[0][0])
    recheck = min(waits) if waits else None
    if suspect:
        return Verdict(Health.SUSPECT, tuple(suspect), recheck_after=recheck)
    return Verdict(Health.HEALTHY, recheck_after=recheck)


def incident_can_close(
    *,
    node: NodeView,
    lease: LeaseView | None,
    detection: DetectionSpec,
    seen: NodeSightings,
    now: Instant,
) -> tuple[bool, float | None]:
    """Whether an open incident for `node` may close, else seconds until it might.

    Requires the node to be Healthy *and* kvha to have seen Ready=True hold for `healthyDelay`.
    Every flap resets that time, so a node bouncing between Ready and NotReady keeps its one
    incident open instead of opening a new one per bounce.
    """
    if assess_node(node=node, lease=lease, detection=detection, seen=seen, now=now).health is not Health.HEALTHY:
        return False, None
    ready = node.condition(COND_READY)
    if ready is None or ready.status != "True":
        return False, None
    delay = seconds(detection.healthy_delay)
    held = _first_seen(seen.conditions.get(COND_READY), now).age(now)
    return (True, None) if held >= delay else (False, delay - held)


def last_heard_from(*, node: NodeView | None, lease: LeaseView | None, seen: NodeSightings) -> datetime | None:
    """When kvha last saw the node talk to the cluster (a new Lease renewal, kubelet status
    heartbeat or virt-handler heartbeat), on kvha's wall clock.

    A hardware watchdog resets a node only once it has lost the cluster, so a watchdog deadline
    counts from here, not from when a condition turned bad: a node that reports Ready=False but
    still renews its Lease is alive and connected, and no watchdog has reset it. The moment is
    when kvha *observed* the change, so a node clock minutes behind cannot make a live node look
    silent for minutes.
    """
    sightings = [seen.lease if lease else None]
    if node is not None:
        sightings += [seen.status_heartbeat, seen.kubevirt_heartbeat]
    known = [s.wall for s in sightings if s is not None]
    return max(known) if known else None


def assess_watched(
    *,
    nodes: Sequence[NodeView],
    leases: Mapping[str, LeaseView],
    sightings: Mapping[str, NodeSightings],
    policy: HAPolicySpec,
    now: Instant,
) -> dict[str, Verdict]:
    """The verdict on every node the policy watches, by name: what the storm guard counts, what
    opens incidents and which nodes may take restarted VMs."""
    return {
        n.name: assess_node(
            node=n,
            lease=leases.get(n.name),
            detection=policy.detection,
            seen=sightings.get(n.name, NodeSightings()),
            now=now,
        )
        for n in nodes
        if policy.node_selector.matches(n.labels)
    }
