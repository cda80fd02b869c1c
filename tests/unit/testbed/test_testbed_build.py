"""The testbed's build recipes, the parts that need neither Go nor the network."""

from __future__ import annotations

import pytest

from kvha_testbed.build import RECIPES, replaces_of, staging_modules_of

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


# An excerpt of kubevirt.io/kubevirt v1.7.0's go.mod: a replace block mixing module pins and its local
# staging modules, plus the single-line and versioned-left-side forms go.mod also allows.
KUBEVIRT_GO_MOD = """module kubevirt.io/kubevirt

go 1.24.0

require (
	k8s.io/api v0.33.5
	kubevirt.io/api v0.0.0-00010101000000-000000000000
	kubevirt.io/client-go v0.0.0-00010101000000-000000000000
)

replace (
	github.com/nxadm/tail => github.com/nxadm/tail v0.0.0-20211216163028-4472660a31a6
	github.com/openshift/api => github.com/openshift/api v0.0.0-20210105115604-44119421ec6b

	k8s.io/api => k8s.io/api v0.33.5 // pinned below what the requirements select
	k8s.io/kube-openapi => k8s.io/kube-openapi v0.0.0-20250318190949-c8a335a9a2ff

	kubevirt.io/api => ./staging/src/kubevirt.io/api
	kubevirt.io/client-go => ./staging/src/kubevirt.io/client-go
)

replace github.com/example/old v1.2.0 => github.com/example/new v1.3.0

replace github.com/example/local => ../local
"""


def test_replaces_are_copied_with_their_versions() -> None:
    assert replaces_of(KUBEVIRT_GO_MOD) == [
        "github.com/nxadm/tail => github.com/nxadm/tail v0.0.0-20211216163028-4472660a31a6",
        "github.com/openshift/api => github.com/openshift/api v0.0.0-20210105115604-44119421ec6b",
        "k8s.io/api => k8s.io/api v0.33.5",
        "k8s.io/kube-openapi => k8s.io/kube-openapi v0.0.0-20250318190949-c8a335a9a2ff",
        "github.com/example/old v1.2.0 => github.com/example/new v1.3.0",
    ]


def test_local_directory_replaces_are_dropped() -> None:
    """KubeVirt's ./staging modules are directories of its repository; the wrapper requires the
    published kubevirt.io/api and client-go instead."""
    copied = "\n".join(replaces_of(KUBEVIRT_GO_MOD))
    assert "kubevirt.io/" not in copied
    assert "../local" not in copied


def test_requirements_are_not_replaces() -> None:
    assert not replaces_of("module m\n\nrequire (\n\tk8s.io/api v0.33.5\n)\n")


def test_an_unparseable_replace_fails_loudly() -> None:
    with pytest.raises(ValueError, match="unparseable replace"):
        replaces_of("replace (\n\tsome => thing with too many words v1\n)\n")


def test_every_component_the_testbed_uses_has_a_recipe() -> None:
    assert set(RECIPES) == {"etcd", "kubernetes", "kwok", "helm", "kubevirt"}
    for recipe in RECIPES.values():
        assert recipe.version.startswith("v"), recipe
        assert recipe.packages, recipe
