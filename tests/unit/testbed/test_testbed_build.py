"""The testbed's build recipes, the parts that need neither Go nor the network."""

from __future__ import annotations

from kvha_testbed.build import RECIPES, staging_modules_of

# An excerpt of k8s.io/kubernetes v1.36.3's go.mod with every kind of k8s.io line it has.
KUBERNETES_GO_MOD = """module k8s.io/kubernetes

go 1.26.0

require (
	github.com/blang/semver/v4 v4.0.0
	k8s.io/api v0.0.0
	k8s.io/apimachinery v0.0.0
	k8s.io/klog/v2 v2.140.0
	k8s.io/kube-openapi v0.0.0-20260317180543-43fb72c5454a
	k8s.io/utils v0.0.0-20260319190234-28399d86e0b5
	k8s.io/kubectl v0.0.0 // indirect
)

require k8s.io/cri-api v0.0.0

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/apimachinery => ./staging/src/k8s.io/apimachinery
)
"""


def test_staging_modules_are_exactly_v0_0_0() -> None:
    assert staging_modules_of(KUBERNETES_GO_MOD) == [
        "k8s.io/api",
        "k8s.io/apimachinery",
        "k8s.io/cri-api",
        "k8s.io/kubectl",
    ]


def test_pseudo_versions_are_not_staging_modules() -> None:
    """k8s.io/utils and kube-openapi have no v0.36.x: replacing them made a cold build fail (403)."""
    modules = staging_modules_of(KUBERNETES_GO_MOD)
    assert "k8s.io/utils" not in modules
    assert "k8s.io/kube-openapi" not in modules
    assert "k8s.io/klog/v2" not in modules


def test_every_component_the_testbed_uses_has_a_recipe() -> None:
    assert set(RECIPES) == {"etcd", "kubernetes", "kwok", "helm", "kubevirt-crds"}
    for recipe in RECIPES.values():
        assert recipe.version.startswith("v"), recipe
        assert recipe.packages, recipe
