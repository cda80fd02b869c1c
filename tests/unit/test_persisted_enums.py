"""Persisted closed sets are enums: stored strings still parse, and the CRD schema lists them."""

import pytest
from pydantic import ValidationError

from kvha import crdgen, metrics
from kvha.models.base import Priority
from kvha.models.hapolicy import FailoverPhase, FailoverRef, FencingStrategy, PriorityLimit
from kvha.models.nodefailover import FailoverVM, FencingStatus


def test_stored_strings_parse_into_the_enums_and_dump_unchanged() -> None:
    fencing = FencingStatus.model_validate({"strategy": "OutOfServiceTaint"})
    ref = FailoverRef.model_validate({"name": "f", "node": "w1", "phase": "Completed"})
    assert fencing.strategy is FencingStrategy.OUT_OF_SERVICE_TAINT
    assert ref.phase is FailoverPhase.COMPLETED
    assert (fencing.to_api()["strategy"], ref.to_api()["phase"]) == ("OutOfServiceTaint", "Completed")


def test_the_crd_schema_lists_the_allowed_values() -> None:
    assert crdgen.model_schema(FencingStatus)["properties"]["strategy"]["enum"] == [s.value for s in FencingStrategy]
    assert crdgen.model_schema(FailoverRef)["properties"]["phase"]["enum"] == [p.value for p in FailoverPhase]


def test_priority_keeps_its_label_on_the_wire() -> None:
    entry = FailoverVM.model_validate({"namespace": "ns", "name": "vm", "priority": "Highest", "fromNode": "n1"})
    assert entry.priority is Priority.HIGHEST
    assert entry.to_api()["priority"] == "Highest"
    assert FailoverVM.model_validate(entry.to_api()) == entry
    assert crdgen.model_schema(FailoverVM)["properties"]["priority"]["enum"] == [p.label for p in Priority]


def test_priority_rejects_what_is_not_a_label() -> None:
    for value in ("highest", 5, "Critical"):
        with pytest.raises(ValidationError):
            FailoverVM.model_validate({"namespace": "ns", "name": "vm", "priority": value, "fromNode": "n1"})


def test_a_priority_limit_cannot_be_disabled() -> None:
    with pytest.raises(ValidationError):
        PriorityLimit.model_validate({"maxPriority": "Disabled"})
    assert "Disabled" not in crdgen.model_schema(PriorityLimit)["properties"]["maxPriority"]["enum"]


def test_metrics_label_a_priority_by_name() -> None:
    labels = {"policy": "p-label-test", "priority": "High"}
    # The registry is the process's: count the increment, not the total (a rerun must pass too).
    before = metrics.REGISTRY.get_sample_value("kvha_vm_restarts_failed_total", labels) or 0.0
    metrics.observe_vm_restart_failed(policy="p-label-test", priority=Priority.HIGH)
    assert metrics.REGISTRY.get_sample_value("kvha_vm_restarts_failed_total", labels) == before + 1
