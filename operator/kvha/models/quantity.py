"""Kubernetes resource quantities ("500m", "2", "192Gi", "1e3") as integers.

The planner compares CPU in millicores and memory in bytes; integer arithmetic keeps placement
exact (a float rounding error could put a VM on a node it does not fit).
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Decimal:
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = _QUANTITY.match(value.strip())
    if not match:
        raise QuantityError(f"not a Kubernetes quantity: {value!r}")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        return Decimal(number) * _SUFFIXES[suffix]
    except InvalidOperation as exc:
        raise QuantityError(f"not a Kubernetes quantity: {value!r}") from exc


def cpu_millis(value: str | int | float | None) -> int:
    """CPU in millicores, rounded up as the kubelet does for requests."""
    if value is None:
        return 0
    return int((parse_quantity(value) * 1000).to_integral_value(rounding=ROUND_CEILING))


def memory_bytes(value: str | int | float | None) -> int:
    if value is None:
        return 0
    return int(parse_quantity(value).to_integral_value(rounding=ROUND_CEILING))


def format_memory(num_bytes: int) -> str:
    """Human form for status and tables: the largest binary unit that keeps one decimal."""
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if abs(num_bytes) >= size:
            return f"{num_bytes / size:.1f}{unit}".replace(".0" + unit, unit)
    return str(num_bytes)


def format_cpu(millis: int) -> str:
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"
