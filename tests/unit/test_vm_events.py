"""When the owner of a VM hears that a policy cannot protect it: once per new verdict."""

from __future__ import annotations

from kvha.handlers.vms import changed_verdicts
from kvha.models.base import Priority
from kvha.protection import Protection, Unprotectable

OK = Protection(True, Priority.parse("Medium"))
MANUAL = Protection(False, Priority.parse("Medium"), Unprotectable.RUN_STRATEGY_MANUAL, "runStrategy Manual")
HALTED = Protection(False, Priority.parse("Medium"), Unprotectable.RUN_STRATEGY_HALTED, "runStrategy Halted")


def test_an_unprotectable_vm_is_told_once_and_again_only_when_its_reason_changes() -> None:
    told, notes = changed_verdicts({}, {"ns/a": MANUAL, "ns/b": OK}, policy="p")
    assert [(key, note.reason, note.vm) for key, note in notes] == [("ns/a", "VMUnprotected", "ns/a")]
    assert notes[0][1].message == "HAPolicy p selects this VM but cannot protect it: runStrategy Manual"

    told, notes = changed_verdicts(told, {"ns/a": MANUAL, "ns/b": OK}, policy="p")
    assert notes == [], "an unchanged verdict is not repeated"

    told, notes = changed_verdicts(told, {"ns/a": HALTED, "ns/b": OK}, policy="p")
    assert [key for key, _ in notes] == ["ns/a"]


def test_a_vm_no_longer_selected_is_forgotten_and_told_again_when_selected_again() -> None:
    told, _ = changed_verdicts({}, {"ns/a": MANUAL}, policy="p")
    told, _ = changed_verdicts(told, {}, policy="p")
    assert told == {}
    _, notes = changed_verdicts(told, {"ns/a": MANUAL}, policy="p")
    assert [key for key, _ in notes] == ["ns/a"]


def test_a_vm_that_becomes_protected_is_not_told_but_hears_if_it_breaks_again() -> None:
    told, _ = changed_verdicts({}, {"ns/a": MANUAL}, policy="p")
    told, notes = changed_verdicts(told, {"ns/a": OK}, policy="p")
    assert notes == []
    _, notes = changed_verdicts(told, {"ns/a": MANUAL}, policy="p")
    assert [key for key, _ in notes] == ["ns/a"]
