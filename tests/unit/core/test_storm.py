"""The storm guard: above the limit of unhealthy nodes, and for a cooldown after, nothing is done."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from core.strategies import NOW, ago
from kvha.detection import StormState, storm_guard
from kvha.models.hapolicy import StormGuardSpec

THIRTY_PERCENT = StormGuardSpec(max_unhealthy_nodes="30%", cooldown="5m")


def test_two_of_three_nodes_down_is_a_storm_and_the_message_says_nothing_is_done() -> None:
    state = storm_guard(
        unhealthy_nodes=2, watched_nodes=3, spec=THIRTY_PERCENT, previous=StormState.restored(), now=NOW
    )
    assert state.active
    assert state.blocks_action
    assert state.limit == 0  # 30% of 3 rounds down
    assert state.message == (
        "2 of 3 watched nodes are unhealthy, above the limit of 0 (30%); nothing is fenced or restarted"
    )


def test_within_the_limit_failover_proceeds() -> None:
    state = storm_guard(
        unhealthy_nodes=3, watched_nodes=10, spec=THIRTY_PERCENT, previous=StormState.restored(), now=NOW
    )
    assert not state.blocks_action
    assert state.message == "3 of 10 watched nodes are unhealthy, within the limit of 3 (30%)"


def test_an_absolute_limit_is_shown_without_a_percentage() -> None:
    state = storm_guard(
        unhealthy_nodes=3,
        watched_nodes=10,
        spec=StormGuardSpec(max_unhealthy_nodes=2),
        previous=StormState.restored(),
        now=NOW,
    )
    assert state.message.endswith("above the limit of 2; nothing is fenced or restarted")


def test_after_a_storm_the_guard_holds_for_the_cooldown_then_lifts() -> None:
    storm = storm_guard(
        unhealthy_nodes=5, watched_nodes=10, spec=THIRTY_PERCENT, previous=StormState.restored(), now=ago(60)
    )
    calm = storm_guard(unhealthy_nodes=1, watched_nodes=10, spec=THIRTY_PERCENT, previous=storm, now=NOW)
    assert calm.blocks_action
    assert not calm.active
    assert calm.ended_at == NOW
    assert calm.recheck_after == 300
    assert "until the 5m cooldown ends at 2026-03-01T12:05:00Z" in calm.message
    later = storm_guard(
        unhealthy_nodes=1, watched_nodes=10, spec=THIRTY_PERCENT, previous=calm, now=NOW + timedelta(minutes=5)
    )
    assert not later.blocks_action
    assert later.ended_at == NOW  # still reported as the last storm's end


def test_the_cooldown_survives_an_operator_restart() -> None:
    restored = StormState.restored(active=False, ended_at=ago(120))
    state = storm_guard(unhealthy_nodes=0, watched_nodes=10, spec=THIRTY_PERCENT, previous=restored, now=NOW)
    assert state.blocks_action
    assert state.recheck_after == 180


@given(
    watched=st.integers(0, 200),
    percent=st.integers(0, 100),
    history=st.lists(st.integers(0, 200), min_size=1, max_size=12),
    steps=st.lists(st.integers(1, 400), min_size=12, max_size=12),
)
def test_the_guard_blocks_exactly_above_the_limit_and_during_cooldown(
    watched: int,
    percent: int,
    history: list[int],
    steps: list[int],
) -> None:
    spec = StormGuardSpec(max_unhealthy_nodes=f"{percent}%", cooldown="5m")
    limit = percent * watched // 100
    state, now, last_storm_end = StormState.restored(), NOW, None
    was_storm = False
    for reported, step in zip(history, steps, strict=False):
        unhealthy = min(reported, watched)
        now += timedelta(seconds=step)
        state = storm_guard(unhealthy_nodes=unhealthy, watched_nodes=watched, spec=spec, previous=state, now=now)
        storm = unhealthy > limit
        if was_storm and not storm:
            last_storm_end = now
        was_storm = storm
        cooling = not storm and last_storm_end is not None and now < last_storm_end + timedelta(minutes=5)
        assert state.limit == limit
        assert state.active == storm
        assert state.blocks_action == (storm or cooling)
