"""What detection concludes about one node, in a form the handlers can store and explain.

A verdict is a value, not an action: the handler opens an incident for an Unhealthy node, shows the
reasons to users (the NodeFailover's `spec.reason`, Events), and re-runs detection after
`recheck_after` because a dead node produces no further watch events that would wake it up.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Health(enum.StrEnum):
    HEALTHY = "Healthy"
    SUSPECT = "Suspect"
    """A failure signal is present but has not lasted long enough to act on."""
    UNHEALTHY = "Unhealthy"


@dataclass(frozen=True, slots=True)
class Verdict:
    health: Health
    reasons: tuple[str, ...] = ()
    """Human-readable signals, e.g. "Ready=Unknown for 42s", "Lease not renewed for 45s"."""
    detected_at: datetime | None = None
    """When the first signal crossed its threshold: the moment the node became Unhealthy, which
    becomes the incident's `spec.detectedAt`."""
    recheck_after: float | None = None
    """Seconds until the verdict can change without any new observation (a signal crossing its
    threshold); None when only a change to the node or its Lease can change it."""

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons) if self.reasons else self.health.value
