"""Persisted closed sets are enums: stored strings still parse, and the CRD schema lists them."""

from kvha import crdgen
from kvha.models.hapolicy import FailoverPhase, FailoverRef, FencingStrategy
from kvha.models.nodefailover import FencingStatus


def test_stored_strings_parse_into_the_enums_and_dump_unchanged() -> None:
    fencing = FencingStatus.model_validate({"strategy": "OutOfServiceTaint"})
    ref = FailoverRef.model_validate({"name": "f", "node": "w1", "phase": "Completed"})
    assert fencing.strategy is FencingStrategy.OUT_OF_SERVICE_TAINT
    assert ref.phase is FailoverPhase.COMPLETED
    assert (fencing.to_api()["strategy"], ref.to_api()["phase"]) == ("OutOfServiceTaint", "Completed")


def test_the_crd_schema_lists_the_allowed_values() -> None:
    assert crdgen.model_schema(FencingStatus)["properties"]["strategy"]["enum"] == [s.value for s in FencingStrategy]
    assert crdgen.model_schema(FailoverRef)["properties"]["phase"]["enum"] == [p.value for p in FailoverPhase]
