"""metav1.Condition bookkeeping: one entry per type, lastTransitionTime moves only on change.

Keeping the old timestamp when nothing changed makes a status patch with identical content a
no-op, so the operator can skip it (no write amplification, no watch churn).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from kvha.models.base import Condition

Status = Literal["True", "False", "Unknown"]


def set_condition(
    conditions: list[Condition],
    *,
    type_: str,
    status: Status,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None = None,
) -> list[Condition]:
    """A new list with `type_` set; the transition time is kept unless status or reason changed."""
    previous = next((c for c in conditions if c.type == type_), None)
    changed = previous is None or previous.status != status or previous.reason != reason
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=now if changed or previous is None else previous.last_transition_time,
        observed_generation=generation,
    )
    return [updated if c.type == type_ else c for c in conditions] if previous else [*conditions, updated]


def condition_status(conditions: list[Condition], type_: str) -> Status | None:
    found = next((c for c in conditions if c.type == type_), None)
    return found.status if found else None
