"""Kubernetes resource quantities ("2Gi", "500m", "1.5") as exact fractions, and back.

The launcher-pod requests must be exact: an off-by-one-MiB rounding decides whether a VM fits a
node in the scheduling tests. Fractions keep "0.1" and "100m" equal.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_SUFFIXES: dict[str, Fraction] = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
_PATTERN = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+)?([a-zA-Z]*)$")
MI = 2**20


def parse_quantity(value: str | int | float) -> Fraction:
    """ "2Gi" -> 2147483648, "250m" -> 1/4; raises ValueError on anything else."""
    if isinstance(value, int | float):
        return Fraction(value)
    match = _PATTERN.match(value.strip())
    if not match or match.group(3) not in _SUFFIXES:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    number = Fraction(match.group(1))
    if match.group(2):
        number *= Fraction(10) ** int(match.group(2)[1:])
    return number * _SUFFIXES[match.group(3)]


def format_memory(bytes_: Fraction | int) -> str:
    """Whole MiB, rounded up (what a human reads in `kubectl describe`)."""
    return f"{math.ceil(Fraction(bytes_) / MI)}Mi"


def format_cpu(cores: Fraction | int) -> str:
    """Whole millicores, rounded up."""
    return f"{math.ceil(Fraction(cores) * 1000)}m"
