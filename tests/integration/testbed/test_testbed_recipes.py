"""The recipe check (`make recipes`) fails, naming the component, when the proxy lacks a version.

Needs Go and the module proxy, not the testbed's binaries: it is what catches a broken recipe that
a cached binary would hide.
"""

from __future__ import annotations

import dataclasses

from kvha_testbed.build import RECIPES, _binary_recipe, check_recipes


def test_a_version_the_proxy_does_not_serve_fails_with_the_component_and_gos_error() -> None:
    missing = _binary_recipe(
        "kwok", version="v0.0.999", module="sigs.k8s.io/kwok", package="sigs.k8s.io/kwok/cmd/kwok", binary="kwok"
    )
    failures = check_recipes([missing])
    assert len(failures) == 1
    assert failures[0].startswith("kwok v0.0.999: go get sigs.k8s.io/kwok@v0.0.999 (exit 1)")
    assert "v0.0.999" in failures[0].split("\n", 1)[1], "go's own error is quoted"


def test_a_package_missing_from_the_resolved_module_fails() -> None:
    """A renamed main package passes `go get` and `go mod tidy` only if nothing imports it: go list
    -deps catches it without compiling."""
    helm = RECIPES["helm"]
    renamed = dataclasses.replace(helm, packages=("helm.sh/helm/v4/cmd/helm-renamed",))
    failures = check_recipes([renamed])
    assert len(failures) == 1
    assert failures[0].startswith(f"helm {helm.version}: go list -deps")
