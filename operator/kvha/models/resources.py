"""A CPU and memory amount as one typed value.

Launcher requests, per-host demand and reservations used to travel as bare `(int, int)` tuples,
and admission control ordered them (memory, CPU) where placement ordered them (CPU, memory): one
unpacking in the wrong order and a host's memory is compared with another's millicores. Named,
keyword-only fields make that mistake impossible to write. Placement is hot code, hence slots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True, kw_only=True)
class Resources:
    """CPU in millicores and memory in bytes (integers, as `kvha.models.quantity` parses them)."""

    cpu_millis: int
    memory_bytes: int

    ZERO: ClassVar[Resources]

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            cpu_millis=self.cpu_millis + other.cpu_millis, memory_bytes=self.memory_bytes + other.memory_bytes
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            cpu_millis=self.cpu_millis - other.cpu_millis, memory_bytes=self.memory_bytes - other.memory_bytes
        )

    def fits(self, within: Resources) -> bool:
        """Both amounts are at most `within`'s: a request fits in what is free."""
        return self.cpu_millis <= within.cpu_millis and self.memory_bytes <= within.memory_bytes


Resources.ZERO = Resources(cpu_millis=0, memory_bytes=0)
