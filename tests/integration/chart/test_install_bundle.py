"""deploy/kvha.yaml is the chart rendered with its defaults, ready for `kubectl apply -f`."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from install_testing import find, parse

NAMESPACED = ("Deployment", "ServiceAccount", "Role", "RoleBinding", "Service", "PodDisruptionBudget")


def test_bundle_is_not_stale(chart: ModuleType) -> None:
    assert chart.BUNDLE.read_text() == chart.render_bundle(), "deploy/kvha.yaml is stale: run hack/render-bundle.sh"


def test_bundle_installs_everything_in_order(chart: ModuleType) -> None:
    docs = parse(chart.BUNDLE.read_text())
    kinds = [d["kind"] for d in docs]
    # kubectl applies in file order: the namespace before anything in it, CRDs before the operator.
    assert kinds[0] == "Namespace"
    assert kinds.index("CustomResourceDefinition") < kinds.index("Deployment")
    namespace = find(docs, "Namespace")
    assert namespace["metadata"]["name"] == "kvha-system"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in docs:
        if doc["kind"] in NAMESPACED:
            assert doc["metadata"]["namespace"] == "kvha-system", doc["kind"]
    assert "HAPolicy" not in kinds, "the bundle must not protect VMs on its own"


def test_check_mode_reports_a_stale_bundle(chart: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stale = tmp_path / "kvha.yaml"
    stale.write_text(chart.BUNDLE.read_text().replace("replicas: 2", "replicas: 1"))
    monkeypatch.setattr(chart, "BUNDLE", stale)
    assert chart.main(["--check"]) == 1
