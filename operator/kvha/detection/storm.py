"""The storm guard: when many nodes look dead at once, the likelier cause is a network partition
or a control-plane outage, not many simultaneous host failures.

Fencing and restarting in that situation would power off healthy hosts and start second copies of
VMs that still run, so above `stormGuard.maxUnhealthyNodes` kvha does nothing and says why. After
the storm it waits `cooldown` before acting again, because nodes return from a partition
one by one and the first few readings are not yet trustworthy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from kvha.constants import COND_STORM_GUARD
from kvha.detection.node_health import assess_watched
from kvha.detection.observed import Instant, NodeSightings
from kvha.detection.verdict import Health
from kvha.models.base import resolve_int_or_percent
from kvha.models.conditions import condition_status
from kvha.models.durations import format_seconds, seconds
from kvha.models.hapolicy import HAPolicySpec, HAPolicyStatus, StormGuardSpec
from kvha.models.timeutil import format_time
from kvha.models.views import LeaseView, NodeView


@dataclass(frozen=True, slots=True)
class StormState:
    active: bool
    limit: int
    unhealthy: int
    watched: int
    ended_at: datetime | None
    """When the last storm ended (kept in HAPolicy status as `stormEndedAt`)."""
    cooling_until: datetime | None
    message: str
    recheck_after: float | None = None
    """Seconds until the cooldown ends and the guard lifts without any new observation."""

    @property
    def blocks_action(self) -> bool:
        """True while nothing may be fenced or restarted."""
        return self.active or self.cooling_until is not None

    @classmethod
    def restored(cls, *, active: bool = False, ended_at: datetime | None = None) -> StormState:
        """The previous state as far as status records it (StormGuardActive condition and
        `stormEndedAt`), for the first evaluation after an operator restart."""
        return cls(active=active, limit=0, unhealthy=0, watched=0, ended_at=ended_at, cooling_until=None, message="")


def storm_guard(
    *,
    unhealthy_nodes: int,
    watched_nodes: int,
    spec: StormGuardSpec,
    previous: StormState,
    now: datetime,
) -> StormState:
    """Whether too many of the watched nodes are unhealthy to act, or were until too recently.

    Percentages round down, so "30%" of 3 nodes allows 0 unhealthy nodes: a small cluster errs on
    the side of doing nothing, which is safe when a human is paged anyway.
    """
    limit = resolve_int_or_percent(spec.max_unhealthy_nodes, watched_nodes)
    active = unhealthy_nodes > limit
    if active:
        ended_at = None
    elif previous.active:
        ended_at = now
    else:
        ended_at = previous.ended_at
    cooldown = seconds(spec.cooldown)
    cooling_until = None
    if ended_at is not None and not active and ended_at + timedelta(seconds=cooldown) > now:
        cooling_until = ended_at + timedelta(seconds=cooldown)
    as_percent = f" ({spec.max_unhealthy_nodes})" if isinstance(spec.max_unhealthy_nodes, str) else ""
    counts = f"{unhealthy_nodes} of {watched_nodes} watched nodes are unhealthy"
    if active:
        message = f"{counts}, above the limit of {limit}{as_percent}; nothing is fenced or restarted"
    elif cooling_until is not None and ended_at is not None:
        message = (
            f"a storm of unhealthy nodes ended at {format_time(ended_at)}; nothing is fenced or restarted "
            f"until the {format_seconds(cooldown)} cooldown ends at {format_time(cooling_until)} "
            f"({counts} now, limit {limit}{as_percent})"
        )
    else:
        message = f"{counts}, within the limit of {limit}{as_percent}"
    return StormState(
        active=active,
        limit=limit,
        unhealthy=unhealthy_nodes,
        watched=watched_nodes,
        ended_at=ended_at,
        cooling_until=cooling_until,
        message=message,
        recheck_after=(cooling_until - now).total_seconds() if cooling_until else None,
    )


def recorded_storm(status: HAPolicyStatus) -> StormState:
    """The storm as the policy's status last recorded it: the memory (did a storm end, and when)
    that fresh counts alone cannot give. StormGuardActive is True during the storm *and* its
    cooldown; only a condition without an end time recorded is the storm itself (else every
    evaluation would restart the cooldown)."""
    return StormState.restored(
        active=condition_status(status.conditions, COND_STORM_GUARD) == "True" and status.storm_ended_at is None,
        ended_at=status.storm_ended_at,
    )


def storm_from_nodes(
    *,
    nodes: Sequence[NodeView],
    leases: Mapping[str, LeaseView],
    sightings: Mapping[str, NodeSightings],
    policy: HAPolicySpec,
    previous: StormState,
    now: Instant,
) -> StormState:
    """The storm guard from counts taken now, for a step about to fence or restart: the policy's
    published status may be a tick old, and a rack that fails node by node would otherwise lose its
    first node to fencing before the storm is on record. A storm recorded as active stays in
    force (it ends, and its cooldown starts, only when the policy records the end)."""
    verdicts = assess_watched(nodes=nodes, leases=leases, sightings=sightings, policy=policy, now=now)
    unhealthy = sum(1 for v in verdicts.values() if v.health is Health.UNHEALTHY)
    return storm_guard(
        unhealthy_nodes=unhealthy, watched_nodes=len(verdicts), spec=policy.storm_guard, previous=previous, now=now.wall
    )
