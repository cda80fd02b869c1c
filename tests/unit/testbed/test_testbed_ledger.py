"""The split-brain ledger: ground truth of running guests, and the invariant it records."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvha_testbed.sim.ledger import GuestLedger, SplitBrainError


def test_start_is_idempotent_and_stop_records_the_reason() -> None:
    ledger = GuestLedger()
    first = ledger.start(vm="ns/a", vmi_uid="u1", node="n1", at=1.0)
    assert ledger.start(vm="ns/a", vmi_uid="u1", node="n1", at=2.0) is first
    stopped = ledger.stop("u1", reason="shut down", at=3.0)
    assert stopped is not None
    assert stopped.stopped_at == 3.0
    assert stopped.stop_reason == "shut down"
    assert ledger.stop("u1", reason="again") is None
    assert ledger.live_instances("ns/a") == []
    assert [i.stop_reason for i in ledger.history("ns/a")] == ["shut down"]


def test_split_brain_is_recorded_when_it_happens_not_when_checked() -> None:
    ledger = GuestLedger()
    ledger.start(vm="ns/a", vmi_uid="old", node="n1", at=1.0)
    ledger.start(vm="ns/a", vmi_uid="new", node="n2", at=2.0)
    ledger.stop("old", reason="fenced late", at=3.0)
    assert len(ledger.live_instances("ns/a")) == 1  # over by now ...
    (event,) = ledger.split_brain_events("ns/a")  # ... but it happened
    assert event.at == 2.0
    assert {i.vmi_uid for i in event.instances} == {"old", "new"}
    with pytest.raises(SplitBrainError, match=r"split brain for ns/a at 2\.0"):
        ledger.assert_no_split_brain()
    ledger.assert_no_split_brain("ns/other")
    ledger.assert_no_split_brain(since=2.5)


def test_power_off_kills_only_that_nodes_guests() -> None:
    ledger = GuestLedger()
    ledger.start(vm="ns/a", vmi_uid="a", node="n1")
    ledger.start(vm="ns/b", vmi_uid="b", node="n2")
    dead = ledger.stop_node("n1", reason="power off")
    assert [i.vmi_uid for i in dead] == ["a"]
    assert [i.vmi_uid for i in ledger.live_on("n2")] == ["b"]
    ledger.start(vm="ns/a", vmi_uid="a2", node="n2")  # restart after the old one is dead: fine
    ledger.assert_no_split_brain()


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 3), st.integers(0, 2)), max_size=40))
def test_an_event_is_recorded_exactly_when_two_instances_overlap(steps: list[tuple[bool, int, int]]) -> None:
    """Model check: replay random starts/stops of up to 4 VMIs of 3 VMs against a naive model."""
    ledger = GuestLedger()
    live: dict[str, str] = {}  # vmi uid -> vm
    expected_events = 0
    for clock, (start, vmi, vm) in enumerate(steps):
        uid, name = f"vmi-{vmi}", f"ns/vm-{vm}"
        if start and uid not in live:
            owner = name
            expected_events += sum(1 for other in live.values() if other == owner) >= 1
            live[uid] = owner
            ledger.start(vm=owner, vmi_uid=uid, node="n", at=float(clock))
        elif not start and uid in live:
            del live[uid]
            ledger.stop(uid, reason="stop", at=float(clock))
    assert len(ledger.split_brain_events()) == expected_events
    assert sorted(i.vmi_uid for i in ledger.live_instances()) == sorted(live)
