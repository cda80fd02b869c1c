"""When a Lease is free, and until when the leader may still write: pure, on a monotonic clock.

Two replicas must never act at once, and neither may trust the other's clock. So, as client-go's
leader election does, a replica judges another's Lease by when *it* saw the record last change
(`observed_at`, its own monotonic clock), never by the holder's `renewTime` against its own wall
clock: a holder whose clock runs 12 s behind would otherwise look expired while it renews on time.

The leader's side of the same bargain: a standby sees our renewal at the earliest when the request
*started*, so nobody can take the Lease before `renew started + duration`. The leader stops
writing one API timeout before that, so that a write it starts in time also lands in time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Clock",
    "LeaderTerm",
    "LeadershipLost",
    "LeaseObservation",
    "LeaseRecord",
    "WriteGuard",
    "lease_is_free",
    "observe",
]

Clock = Callable[[], float]


@dataclass(frozen=True)
class LeaseRecord:
    """The fields of a Lease's spec that make up a leader record; any change is a sign of life."""

    holder: str
    duration_seconds: int
    acquire_time: str
    renew_time: str
    transitions: int

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> LeaseRecord:
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=str(spec.get("acquireTime") or ""),
            renew_time=str(spec.get("renewTime") or ""),
            transitions=int(spec.get("leaseTransitions") or 0),
        )


@dataclass(frozen=True)
class LeaseObservation:
    record: LeaseRecord
    observed_at: float
    """Our monotonic time when we first saw this exact record."""

    @property
    def expires_at(self) -> float:
        """Our monotonic time from which the holder can no longer be alive and acting."""
        return self.observed_at + self.record.duration_seconds


def observe(previous: LeaseObservation | None, record: LeaseRecord, *, now: float) -> LeaseObservation:
    """Keep the time we first saw `record`; a changed record (a renewal) restarts the clock."""
    if previous is not None and previous.record == record:
        return previous
    return LeaseObservation(record=record, observed_at=now)


def lease_is_free(observation: LeaseObservation, *, identity: str, now: float) -> bool:
    """Unheld, ours, or unchanged for a whole lease duration by our own clock."""
    holder = observation.record.holder
    return not holder or holder == identity or now >= observation.expires_at


class LeadershipLost(Exception):  # noqa: N818 - a state, like asyncio's CancelledError, not an "Error"
    """Raised instead of a write once this replica can no longer prove it leads."""


@dataclass(frozen=True)
class LeaderTerm:
    """What our last successful renewal proves."""

    renew_started: float
    """Our monotonic time when the renewal that succeeded was sent (its read, in fact)."""
    duration_seconds: float
    write_margin_seconds: float
    """The API request timeout: a write started before the deadline ends before a standby may act."""

    @property
    def write_deadline(self) -> float:
        return self.renew_started + self.duration_seconds - self.write_margin_seconds


class WriteGuard:
    """Checked immediately before every write: raises once the leader's term has run out.

    Shared by the elector (which extends the term after each renewal) and the API adapter (which
    checks it inside the worker thread, right before the request leaves). A guard that was never
    given a term refuses every write; `unguarded()` is for runs without leader election.
    """

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._term: LeaderTerm | None = None
        self._revoked = False
        self._unguarded = False

    @classmethod
    def unguarded(cls) -> WriteGuard:
        guard = cls()
        guard._unguarded = True
        return guard

    def renewed(self, term: LeaderTerm) -> None:
        if not self._revoked:
            self._term = term

    def revoke(self) -> None:
        """Leadership is lost for good: no later renewal brings writing back in this process."""
        self._revoked = True
        self._term = None

    def remaining(self) -> float:
        """Seconds of writing left (<= 0 when none)."""
        if self._unguarded:
            return float("inf")
        if self._term is None:
            return 0.0
        return self._term.write_deadline - self.clock()

    def check(self, what: str = "write") -> None:
        if self.remaining() <= 0:
            raise LeadershipLost(f"{what} refused: leadership can no longer be proven")
