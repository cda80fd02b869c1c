"""The chart installs exactly the CRDs in crds/ (generated from the models), plus Helm's metadata.

A stale copy in the chart would install an old schema on every `helm upgrade`; run
hack/render-bundle.sh after `python -m kvha.crdgen`.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from install_testing import Manifest

CHART_ONLY_METADATA = {"labels", "annotations"}


def _source_crds(chart: ModuleType) -> dict[str, dict[str, Any]]:
    crds = [yaml.safe_load(path.read_text()) for path in sorted(chart.CRDS.glob("*.yaml"))]
    return {crd["metadata"]["name"]: crd for crd in crds}


def _without_metadata(crd: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in crd.items() if k != "metadata"}


def test_chart_copy_is_byte_identical(chart: ModuleType) -> None:
    assert chart.stale_chart_crds() == [], "charts/kvha/files/crds/ is stale: run hack/render-bundle.sh"


def test_rendered_crds_equal_the_generated_ones(chart: ModuleType, defaults: Manifest) -> None:
    source = _source_crds(chart)
    rendered = {d["metadata"]["name"]: d for d in defaults if d["kind"] == "CustomResourceDefinition"}
    assert rendered.keys() == source.keys()
    for name, crd in source.items():
        ours = rendered[name]
        # Helm's round trip through fromYaml/toYaml must not change a single value (numbers, quotes).
        assert _without_metadata(ours) == _without_metadata(crd), name
        strip = {k: v for k, v in ours["metadata"].items() if k not in CHART_ONLY_METADATA}
        assert strip == {k: v for k, v in crd["metadata"].items() if k not in CHART_ONLY_METADATA}, name
        assert crd["metadata"].get("labels", {}).items() <= ours["metadata"]["labels"].items(), name


def test_drift_is_detected(chart: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    copy = tmp_path / "crds"
    copy.mkdir()
    for path in chart.CRDS.glob("*.yaml"):
        (copy / path.name).write_text(path.read_text().replace("watchedNodes", "watchedNode"))
    monkeypatch.setattr(chart, "CHART_CRDS", copy)
    assert chart.stale_chart_crds() == ["hapolicies.kvha.io.yaml"]
