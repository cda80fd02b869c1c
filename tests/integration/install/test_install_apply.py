"""The chart and the bundle install on a real API server: schemas, admission (Pod Security
"restricted"), CRD validation of the default policy, and Helm's own install/upgrade/uninstall."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from install_cluster import Kubectl, Release, render_bundle

from kvha_testbed.testbed import Testbed

pytestmark = pytest.mark.integration

NO_NODE = "kvha-test/no-such-node"
# A policy that selects no VM and watches no node, so no operator of another test would act on it.
INERT_POLICY = (
    f"defaultPolicy.spec.nodeSelector.matchLabels.{NO_NODE}=x",
    f"defaultPolicy.spec.vmSelector.matchLabels.{NO_NODE}=x",
)


def test_bundle_passes_server_side_dry_run(kubectl: Kubectl) -> None:
    created = not kubectl("get", "namespace", render_bundle.NAMESPACE, "--ignore-not-found", "-o", "name")
    # Objects in a namespace that does not exist yet fail a dry run; the namespace is the only
    # object created for real here.
    if created:
        kubectl("create", "namespace", render_bundle.NAMESPACE)
    try:
        out = kubectl("apply", "--server-side", "--dry-run=server", "-f", str(render_bundle.BUNDLE))
    finally:
        if created:
            kubectl("delete", "namespace", render_bundle.NAMESPACE, "--wait=false")
    documents = [d for d in yaml.safe_load_all(render_bundle.BUNDLE.read_text()) if d]
    assert out.count("serverside-applied (server dry run)") == len(documents), out


def test_chart_applies_for_real(kubectl: Kubectl, release: Callable[..., Release]) -> None:
    rel = release(
        "kvha-apply", "defaultPolicy.enabled=true", *INERT_POLICY, extra=("--api-versions", "kvha.io/v1alpha1/HAPolicy")
    )
    dry = kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", stdin=rel.manifest)
    assert "HAPolicy" not in dry or "serverside-applied (server dry run)" in dry
    kubectl("apply", "--server-side", "-f", "-", stdin=rel.manifest)

    deployment = json.loads(kubectl("-n", rel.namespace, "get", "deployment", rel.name, "-o", "json"))
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["template"]["spec"]["priorityClassName"] == "system-cluster-critical"
    for kind in ("serviceaccount", "service", "poddisruptionbudget", "role", "rolebinding"):
        assert kubectl("-n", rel.namespace, "get", kind, "-o", "name").strip(), kind
    assert kubectl("get", "clusterrole", rel.name, "-o", "name").strip()
    # The CRD's schema validated and defaulted the policy, exactly as for a user's own.
    policy = json.loads(kubectl("get", "hapolicy", rel.find("HAPolicy")["metadata"]["name"], "-o", "json"))
    assert policy["spec"]["fencing"]["strategy"] == "OutOfServiceTaint"
    assert policy["spec"]["restart"]["maxParallel"] == 10


def test_pod_is_admitted_under_restricted_pod_security(kubectl: Kubectl, release: Callable[..., Release]) -> None:
    """The API server's own PodSecurity admission, enforcing "restricted", accepts the pod."""
    rel = release("kvha-psa")
    kubectl("label", "namespace", rel.namespace, "pod-security.kubernetes.io/enforce=restricted")
    template = rel.find("Deployment")["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "psa-probe", **template["metadata"]},
        "spec": template["spec"],
    }
    kubectl("-n", rel.namespace, "create", "serviceaccount", template["spec"]["serviceAccountName"])
    out = kubectl("-n", rel.namespace, "apply", "--dry-run=server", "-f", "-", stdin=json.dumps(pod), check=False)
    assert "created (server dry run)" in out, out
    assert "Warning" not in out, out
    # And the same check refuses a pod that runs as root, so the check itself is real.
    pod["spec"]["securityContext"]["runAsNonRoot"] = False
    refused = kubectl("-n", rel.namespace, "apply", "--dry-run=server", "-f", "-", stdin=json.dumps(pod), check=False)
    assert "violates PodSecurity" in refused, refused


@pytest.fixture
def helm_env(plane: Testbed, kubectl: Kubectl) -> Iterator[Callable[..., str]]:
    """helm against the testbed; afterwards Helm's ownership marks are taken off the shared CRDs."""
    namespaces: list[str] = []

    def helm(*args: str) -> str:
        if "--namespace" in args:
            namespaces.append(args[args.index("--namespace") + 1])
        return render_bundle.helm(*args, "--kubeconfig", str(plane.kubeconfig))

    yield helm
    for crd in ("hapolicies.kvha.io", "nodefailovers.kvha.io"):
        kubectl(
            "annotate",
            "crd",
            crd,
            "meta.helm.sh/release-name-",
            "meta.helm.sh/release-namespace-",
            "helm.sh/resource-policy-",
            check=False,
        )
    for namespace in namespaces:
        kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false")


def test_helm_install_upgrade_uninstall(kubectl: Kubectl, helm_env: Callable[..., str], tmp_path: Path) -> None:
    name = "kvha-helm"
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "defaultPolicy": {
                    "enabled": True,
                    "name": "kvha-helm-test",
                    "spec": {
                        "nodeSelector": {"matchLabels": {NO_NODE: "x"}},
                        "vmSelector": {"matchLabels": {NO_NODE: "x"}},
                    },
                }
            }
        )
    )
    chart = str(render_bundle.CHART)
    # The CRDs are there already (the testbed and the test above applied them with kubectl), as
    # after a switch from `kubectl apply` to Helm: docs/install.md's command for that takes them over.
    helm_env(
        "install",
        name,
        chart,
        "--namespace",
        name,
        "--create-namespace",
        "--take-ownership",
        "--force-conflicts",
        "--values",
        str(values),
    )
    policy = json.loads(kubectl("get", "hapolicy", "kvha-helm-test", "-o", "json"))
    assert policy["metadata"]["annotations"]["meta.helm.sh/release-name"] == name
    assert "helm.sh/hook" not in policy["metadata"]["annotations"]  # the CRD was served: a regular object
    crd = json.loads(kubectl("get", "crd", "hapolicies.kvha.io", "-o", "json"))
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"

    helm_env(
        "upgrade",
        name,
        chart,
        "--namespace",
        name,
        "--values",
        str(values),
        "--set",
        "defaultPolicy.spec.restart.maxParallel=3",
    )
    upgraded = json.loads(kubectl("get", "hapolicy", "kvha-helm-test", "-o", "json"))
    assert upgraded["metadata"]["uid"] == policy["metadata"]["uid"], "the policy must be updated, not recreated"
    assert upgraded["spec"]["restart"]["maxParallel"] == 3

    out = helm_env("uninstall", name, "--namespace", name, "--wait")
    assert "kept due to the resource policy" in out or "uninstalled" in out
    assert not kubectl("get", "hapolicy", "kvha-helm-test", "--ignore-not-found", "-o", "name").strip()
    assert not kubectl("get", "clusterrole", name, "--ignore-not-found", "-o", "name").strip()
    # The CRDs, and with them every user's policies and incident records, survive the uninstall.
    kept = kubectl("get", "crd", "hapolicies.kvha.io", "nodefailovers.kvha.io", "-o", "name").split()
    assert len(kept) == 2, kept
