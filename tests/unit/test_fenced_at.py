"""`status.fencedAt` is derived from `fencing.confirmedAt`: written, kept by the CRD, never read back."""

import yaml

from kvha import crdgen
from kvha.models.nodefailover import NodeFailoverStatus

CONFIRMED = "2026-11-25T13:25:29Z"


def test_fenced_at_is_written_from_the_fencing_confirmation_and_a_stored_value_is_ignored() -> None:
    stored = {
        "fencedAt": "2020-01-01T00:00:00Z",
        "fencing": {"strategy": "OutOfServiceTaint", "confirmedAt": CONFIRMED},
    }
    status = NodeFailoverStatus.model_validate(stored)
    assert status.to_api()["fencedAt"] == CONFIRMED
    assert "fencedAt" not in NodeFailoverStatus.model_validate({"fencedAt": CONFIRMED}).to_api()


def test_the_crd_keeps_fenced_at_so_the_apiserver_does_not_prune_it() -> None:
    schema = yaml.safe_load(crdgen.render(crdgen.NODEFAILOVER))["spec"]["versions"][0]["schema"]
    prop = schema["openAPIV3Schema"]["properties"]["status"]["properties"]["fencedAt"]
    assert (prop["type"], prop["format"], prop["nullable"]) == ("string", "date-time", True)
    assert "readOnly" not in prop
