"""Resources: the CPU and memory pair that replaced order-sensitive (int, int) tuples."""

from __future__ import annotations

import dataclasses

import pytest

from kvha.models.resources import Resources

small = Resources(cpu_millis=500, memory_bytes=2**30)
large = Resources(cpu_millis=4_000, memory_bytes=8 * 2**30)


def test_adding_and_subtracting_work_field_by_field() -> None:
    assert small + large == Resources(cpu_millis=4_500, memory_bytes=9 * 2**30)
    assert large - small == Resources(cpu_millis=3_500, memory_bytes=7 * 2**30)
    # Free capacity can go negative once reservations exceed it; subtraction must not clamp.
    assert small - large == Resources(cpu_millis=-3_500, memory_bytes=-7 * 2**30)
    assert Resources.ZERO + small == small
    assert small - small == Resources.ZERO


def test_fitting_needs_both_cpu_and_memory_to_be_within() -> None:
    assert small.fits(large)
    assert not large.fits(small)
    assert small.fits(small)  # exactly full still fits, as the scheduler sees it
    assert not Resources(cpu_millis=500, memory_bytes=9 * 2**30).fits(large)
    assert not Resources(cpu_millis=5_000, memory_bytes=2**30).fits(large)


def test_the_fields_can_only_be_named_and_never_change() -> None:
    with pytest.raises(TypeError):
        Resources(500, 2**30)  # type: ignore[misc]  # positional is what let the order flip
    with pytest.raises(dataclasses.FrozenInstanceError):
        small.cpu_millis = 1  # type: ignore[misc]
