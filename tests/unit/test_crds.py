"""The committed CRDs are exactly what the models generate, and are valid structural schemas.

The apiserver itself validates them in the integration tests; these checks catch drift and the
structural-schema mistakes early, without a control plane.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kvha import crdgen
from kvha.models.hapolicy import HAPolicySpec

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"


def test_committed_crds_match_the_models() -> None:
    assert crdgen.drift(CRD_DIR) == [], "crds/ is stale: run `python -m kvha.crdgen`"


def test_drift_is_detected(tmp_path: Path) -> None:
    crdgen.write_all(tmp_path)
    path = tmp_path / "hapolicies.kvha.io.yaml"
    path.write_text(path.read_text().replace("maxParallel", "maxParalel"))
    assert crdgen.drift(tmp_path) == ["hapolicies.kvha.io"]


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.get("properties", {}).items():
            found += _walk(value, f"{path}.{key}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                found += _walk(node[key], f"{path}[{key}]")
    return found


@pytest.mark.parametrize("spec", crdgen.ALL, ids=lambda s: s.name)
def test_schema_is_structural(spec: crdgen.CrdSpec) -> None:
    schema = crdgen.crd(spec)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = yaml.safe_dump(schema)
    assert "$ref" not in text
    assert "title:" not in text
    for path, node in _walk(schema):
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node, path
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
            continue
        assert "type" in node, f"{path} has no type (structural schemas need one everywhere)"
        assert not ("properties" in node and "additionalProperties" in node), path
        for option in node.get("anyOf", []):
            assert "type" not in option, path
            assert "default" not in option, path


def test_conditions_are_a_map_keyed_by_type() -> None:
    schema = crdgen.crd(crdgen.HAPOLICY)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    conditions = schema["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_defaults_in_the_crd_match_the_model_defaults() -> None:
    """A user reading `kubectl get hap -o yaml` sees the same defaults the operator applies."""
    schema = crdgen.crd(crdgen.HAPOLICY)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]["properties"]
    model = HAPolicySpec()
    assert spec["restart"]["properties"]["maxParallel"]["default"] == model.restart.max_parallel
    assert spec["fencing"]["properties"]["strategy"]["default"] == model.fencing.strategy.value
    assert spec["stormGuard"]["properties"]["maxUnhealthyNodes"]["default"] == model.storm_guard.max_unhealthy_nodes


def test_cel_rules_carry_readable_messages() -> None:
    fencing = crdgen.crd(crdgen.HAPOLICY)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["fencing"]
    messages = [rule["message"] for rule in fencing["x-kubernetes-validations"]]
    assert any("allowUnfencedRestart" in m for m in messages)
    assert any("remediationTemplate" in m for m in messages)


def test_the_crd_rejects_a_kubevirt_heartbeat_threshold_under_three_minutes() -> None:
    detection = crdgen.crd(crdgen.HAPOLICY)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["detection"]
    [rule] = detection["x-kubernetes-validations"]
    assert "duration(self.kubevirtHeartbeatStaleAfter) >= duration('3m')" in rule["rule"]
    assert "below 3m" in rule["message"]


def test_printer_columns_read_well() -> None:
    columns = {c["name"] for c in crdgen.crd(crdgen.NODEFAILOVER)["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert {"Node", "Phase", "Restored", "Total", "Waiting", "Age"} <= columns
    names = crdgen.crd(crdgen.HAPOLICY)["spec"]["names"]
    assert "hap" in names["shortNames"]
