"""Events the decision core asks the handlers to post.

Fencing, the planner and the reconcile steps all word events, so the note lives here, below them
all, rather than in any one of them. The core decides what is worth telling a user and words it;
the handler only posts it, on the NodeFailover or, when `vm` is set, on that VirtualMachine as
well. Reasons come from `kvha.constants` so that alerts can match on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class EventNote:
    reason: str
    message: str
    type: Literal["Normal", "Warning"] = "Normal"
    vm: str | None = None
    """`namespace/name` of the VirtualMachine the event is about, if any."""
