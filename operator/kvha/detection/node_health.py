"""Is this node dead? Each failure signal is timed against its threshold.

Three kinds of signal, any one of which is enough (as in node-healthcheck-operator, whose
`unhealthyConditions` this mirrors):

* a node condition from `detection.unhealthyConditions` (Ready=Unknown, Ready=False, …) that has
  held since its lastTransitionTime for its duration;
* the node's Lease in kube-node-lease not renewed for `leaseStaleAfter`. The kubelet renews it
  every 10 s, so a stale Lease notices a dead kubelet before the node-lifecycle controller flips
  Ready (40 s grace) — but a *missing* Lease is only a signal when Ready is not True too, because a
  cluster may run with leases disabled or the Lease may not be in our cache yet;
* virt-handler's `kubevirt.io/heartbeat` annotation older than `kubevirtHeartbeatStaleAfter`
  (KubeVirt's own `isNodeUnresponsive`), when configured. A node without the annotation runs no
  virt-handler and hosts no VMs, so the missing annotation is not a signal.

A signal that is present but younger than its threshold makes the node Suspect; the handler is
told when to look again. Hysteresis lives in `incident_can_close`: an incident closes only after
Ready=True has held for `healthyDelay`, so a flapping node keeps one incident open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from kvha.constants import COND_READY
from kvha.detection.verdict import Health, Verdict
from kvha.models.durations import format_seconds, seconds
from kvha.models.hapolicy import DetectionSpec
from kvha.models.views import LeaseView, NodeView

# A lease or heartbeat counts as "late" (Suspect) once half its staleness threshold has passed:
# the kubelet renews every quarter of the lease duration, so by then it has missed a renewal.
_LATE_FRACTION = 0.5


@dataclass(frozen=True, slots=True)
class _Signal:
    """A failure signal, bad since `since`: Suspect after `suspect_after` s, Unhealthy after `threshold` s."""

    description: str
    since: datetime
    threshold: float
    suspect_after: float = 0.0


def _elapsed(since: datetime, now: datetime) -> float:
    # A timestamp from a node whose clock runs ahead must not count as negative time.
    return max((now - since).total_seconds(), 0.0)


def _condition_signals(node: NodeView, detection: DetectionSpec, now: datetime) -> list[_Signal]:
    signals = []
    for rule in detection.unhealthy_conditions:
        condition = node.condition(rule.type)
        if condition is None or condition.status != rule.status:
            continue
        # Without timestamps the condition cannot be timed: counting from `now` keeps it Suspect
        # (visible, re-checked) rather than acting on a guess.
        since = condition.last_transition_time or condition.last_heartbeat_time or now
        signals.append(_Signal(f"{rule.type}={rule.status}", since, seconds(rule.duration)))
    return signals


def _lease_signal(node: NodeView, lease: LeaseView | None, detection: DetectionSpec) -> _Signal | None:
    if detection.lease_stale_after is None:
        return None
    threshold = seconds(detection.lease_stale_after)
    if lease is not None and lease.renew_time is not None:
        return _Signal("Lease not renewed", lease.renew_time, threshold, threshold * _LATE_FRACTION)
    ready = node.condition(COND_READY)
    if ready is None or ready.status == "True" or ready.last_transition_time is None:
        return None
    return _Signal("no Lease in kube-node-lease and not Ready", ready.last_transition_time, threshold)


def _heartbeat_signal(node: NodeView, detection: DetectionSpec) -> _Signal | None:
    if detection.kubevirt_heartbeat_stale_after is None or node.kubevirt_heartbeat is None:
        return None
    threshold = seconds(detection.kubevirt_heartbeat_stale_after)
    return _Signal("KubeVirt heartbeat not updated", node.kubevirt_heartbeat, threshold, threshold * _LATE_FRACTION)


def assess_node(*, node: NodeView, lease: LeaseView | None, detection: DetectionSpec, now: datetime) -> Verdict:
    """Healthy, Suspect or Unhealthy, with the signals that decided it and when to look again."""
    signals = _condition_signals(node, detection, now)
    signals += [s for s in (_lease_signal(node, lease, detection), _heartbeat_signal(node, detection)) if s]
    crossed: list[tuple[datetime, str]] = []
    suspect: list[str] = []
    waits: list[float] = []
    for signal in signals:
        elapsed = _elapsed(signal.since, now)
        if elapsed >= signal.threshold:
            crossed.append(
                (
                    signal.since + timedelta(seconds=signal.threshold),
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
        return Verdict(Health.UNHEALTHY, tuple(reason for _, reason in crossed), unhealthy_since=crossed[0][0])
    recheck = min(waits) if waits else None
    if suspect:
        return Verdict(Health.SUSPECT, tuple(suspect), recheck_after=recheck)
    return Verdict(Health.HEALTHY, recheck_after=recheck)


def incident_can_close(
    *,
    node: NodeView,
    lease: LeaseView | None,
    detection: DetectionSpec,
    now: datetime,
) -> tuple[bool, float | None]:
    """Whether an open incident for `node` may close, else seconds until it might.

    Requires the node to be Healthy *and* Ready=True to have held for `healthyDelay` since its
    lastTransitionTime. Every flap resets that time, so a node bouncing between Ready and
    NotReady keeps its one incident open instead of opening a new one per bounce.
    """
    if assess_node(node=node, lease=lease, detection=detection, now=now).health is not Health.HEALTHY:
        return False, None
    ready = node.condition(COND_READY)
    if ready is None or ready.status != "True" or ready.last_transition_time is None:
        return False, None
    delay = seconds(detection.healthy_delay)
    held = _elapsed(ready.last_transition_time, now)
    return (True, None) if held >= delay else (False, delay - held)


def last_heard_from(*, node: NodeView | None, lease: LeaseView | None) -> datetime | None:
    """The latest moment the node provably talked to the cluster (Lease renewal, kubelet status
    heartbeat, virt-handler heartbeat).

    A hardware watchdog resets a node only once it has lost the cluster, so a watchdog deadline
    counts from here, not from when a condition turned bad: a node that reports Ready=False but
    still renews its Lease is alive and connected, and no watchdog has reset it.
    """
    times = [lease.renew_time if lease else None]
    if node is not None:
        ready = node.condition(COND_READY)
        times += [ready.last_heartbeat_time if ready else None, node.kubevirt_heartbeat]
    known = [t for t in times if t is not None]
    return max(known) if known else None
