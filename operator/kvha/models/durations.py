"""Go-style durations ("30s", "5m", "1h30m") as used in Kubernetes CRDs (metav1.Duration).

Policies are written by humans, who read "5m" faster than "300"; the CRD validates the pattern so a
typo is rejected by the apiserver rather than discovered during an incident.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=32)]


def seconds(duration: str) -> float:
    if not re.fullmatch(DURATION_PATTERN, duration):
        raise ValueError(f"not a duration (expected e.g. 30s, 5m, 1h30m): {duration!r}")
    return sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _PART.findall(duration))


def format_seconds(value: float) -> str:
    """Inverse of `seconds` for whole numbers of seconds, used in messages and status."""
    whole = round(value)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"
