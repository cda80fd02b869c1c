"""The Helm chart lints, renders for the documented configurations, and refuses bad values with a
message that names the offending key."""

from __future__ import annotations

import re
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from install_testing import Manifest, find
from kvha import metrics

LABELS = {"app.kubernetes.io/name": "kvha", "app.kubernetes.io/instance": "kvha"}


def _container(docs: Manifest) -> dict[str, Any]:
    containers = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _env(docs: Manifest) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in _container(docs)["env"]}


def test_lint_is_clean(chart: ModuleType) -> None:
    out = chart.helm("lint", "--strict", str(chart.CHART), "--set", "defaultPolicy.enabled=true")
    assert "0 chart(s) failed" in out


def test_defaults_render_the_operator(defaults: Manifest) -> None:
    kinds = sorted(d["kind"] for d in defaults)
    assert kinds == sorted(
        [
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ]
    )
    cluster_scoped = (
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    )
    for doc in defaults:
        if doc["kind"] not in cluster_scoped:
            assert doc["metadata"]["namespace"] == "kvha-system", doc["kind"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kvha"


def test_deployment_is_highly_available(defaults: Manifest) -> None:
    deployment = find(defaults, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pod = spec["template"]["spec"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert anti["podAffinityTerm"]["labelSelector"]["matchLabels"] == LABELS
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    # A replica on a dead node is replaced after 30s instead of the default 5 minutes.
    unreachable = next(t for t in pod["tolerations"] if t["key"] == "node.kubernetes.io/unreachable")
    assert unreachable["tolerationSeconds"] == 30
    pdb = find(defaults, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == LABELS


def test_pod_meets_the_restricted_pod_security_standard(defaults: Manifest) -> None:
    pod = find(defaults, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = _container(defaults)["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is True  # kvha talks to the API server
    assert all("hostPath" not in v for v in pod["volumes"])


def test_container_settings(defaults: Manifest) -> None:
    container = _container(defaults)
    assert "command" not in container  # the image's ENTRYPOINT (kvha) runs
    assert container["args"] == ["run", "--log-format", "json"]
    assert container["image"] == "ghcr.io/kvha/kvha:0.1.0"
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}
    assert container["resources"]["limits"] == {"memory": "512Mi"}
    env = _env(defaults)
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["KVHA_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["KVHA_LEASE_NAME"] == "kvha-leader"
    assert env["KVHA_LEASE_SECONDS"] == "15"
    assert env["KVHA_LEADER_ELECTION"] == "true"
    assert env["KVHA_HTTP_PORT"] == "8080"


def test_env_names_are_settings_the_operator_reads() -> None:
    """Every variable the chart sets is read by kvha.settings (a renamed setting would be ignored)."""
    import inspect  # noqa: PLC0415

    from kvha import settings  # noqa: PLC0415

    source = inspect.getsource(settings)
    for name in (
        "POD_NAME",
        "KVHA_NAMESPACE",
        "KVHA_LEASE_NAME",
        "KVHA_LEASE_SECONDS",
        "KVHA_LEADER_ELECTION",
        "KVHA_HTTP_PORT",
    ):
        assert f'"{name}"' in source, name


def test_metrics_service_selects_the_pods(defaults: Manifest) -> None:
    service = find(defaults, "Service")
    assert service["spec"]["selector"] == LABELS
    assert service["spec"]["ports"] == [{"name": "http-metrics", "port": 8080, "targetPort": "http", "protocol": "TCP"}]


def test_crds_can_be_left_out(render: Callable[..., Manifest]) -> None:
    docs = render("crds-off")
    assert not [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    assert find(docs, "Deployment")


def test_crds_are_kept_on_uninstall(defaults: Manifest, render: Callable[..., Manifest]) -> None:
    for crd in (d for d in defaults if d["kind"] == "CustomResourceDefinition"):
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    released = render(set_values=("crds.keep=false",))
    for crd in (d for d in released if d["kind"] == "CustomResourceDefinition"):
        assert "helm.sh/resource-policy" not in (crd["metadata"].get("annotations") or {})


def test_monitoring(render: Callable[..., Manifest]) -> None:
    docs = render("monitoring")
    monitor = find(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"] == LABELS
    assert monitor["spec"]["endpoints"][0]["port"] == find(docs, "Service")["spec"]["ports"][0]["name"]
    rule = find(docs, "PrometheusRule")
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert {
        "KvhaIncidentStuck",
        "KvhaVMsWaitingForCapacity",
        "KvhaInsufficientFailoverCapacity",
        "KvhaStormGuardActive",
        "KvhaRecoveredNodeTainted",
        "KvhaNoLeader",
    } <= alerts.keys()
    for alert in alerts.values():
        assert alert["labels"]["team"] == "platform"
        assert alert["labels"]["severity"] in ("warning", "critical")
        assert alert["annotations"]["summary"]
        assert alert["annotations"]["description"]
        assert 'namespace="kvha-system"' in alert["expr"]


def test_alerts_use_metrics_the_operator_exports(render: Callable[..., Manifest]) -> None:
    """Alerts on a renamed metric go silent without an error anywhere; this test is the error."""
    exported = {m.name for m in metrics.REGISTRY.collect()}
    exported |= {f"{name}_total" for name in exported}  # counters are exported with _total
    rule = find(render("monitoring"), "PrometheusRule")
    used = {
        name
        for group in rule["spec"]["groups"]
        for r in group["rules"]
        for name in re.findall(r"\bkvha_[a-z_]+\b", r["expr"])
    }
    assert used, "no kvha_ metric in the alerts"
    assert used <= exported, f"alerts use metrics kvha does not export: {sorted(used - exported)}"


def test_default_policy_is_opt_in(defaults: Manifest, render: Callable[..., Manifest]) -> None:
    assert not [d for d in defaults if d["kind"] == "HAPolicy"]
    policy = find(render("default-policy"), "HAPolicy", "production")
    assert policy["apiVersion"] == "kvha.io/v1alpha1"
    assert policy["spec"] == {"vmSelector": {"matchLabels": {"ha": "true"}}, "restart": {"maxParallel": 5}}
    # With the chart's own CRDs not served yet (first install), the policy is a post-install hook;
    # never deleted before re-creation, which would abort its failovers.
    annotations = policy["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "hook-failed"
    assert annotations["meta.helm.sh/release-name"] == "kvha"


def test_default_policy_is_a_regular_object_once_the_crd_is_served(render: Callable[..., Manifest]) -> None:
    policy = find(render("default-policy", extra=("--api-versions", "kvha.io/v1alpha1/HAPolicy")), "HAPolicy")
    assert "helm.sh/hook" not in policy["metadata"]["annotations"]


def test_production_values(render: Callable[..., Manifest]) -> None:
    docs = render("production")
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    assert _container(docs)["image"].endswith("@sha256:" + "0123456789abcdef" * 4)
    assert "priorityClassName" not in pod
    required = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required[0]["topologyKey"] == "kubernetes.io/hostname"
    assert _env(docs)["KVHA_POLICY_INTERVAL"] == "5"


def test_single_replica_has_no_disruption_budget(render: Callable[..., Manifest]) -> None:
    """minAvailable 1 with one replica would block every node drain."""
    docs = render(set_values=("replicas=1",))
    assert not [d for d in docs if d["kind"] == "PodDisruptionBudget"]


def test_names_follow_the_release(render: Callable[..., Manifest]) -> None:
    docs = render(release="prod")
    deployment = find(docs, "Deployment")
    assert deployment["metadata"]["name"] == "prod-kvha"
    env = {e["name"]: e.get("value") for e in _container(docs)["env"]}
    assert env["KVHA_LEASE_NAME"] == "prod-kvha-leader"
    role = find(docs, "Role")
    assert role["rules"][1]["resourceNames"] == ["prod-kvha-leader"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("bad-typo", "additional properties 'replica' not allowed"),
        ("bad-no-leader-election", "at '/leaderElection/enabled': value must be true"),
        ("bad-types", "at '/crds/install': got string, want boolean"),
        ("bad-spread", "at '/spread/nodes': value must be one of 'preferred', 'required', 'none'"),
        ("bad-duration", "at '/prometheusRule/incidentStuckFor'"),
        ("bad-root", "at '/podSecurityContext/runAsNonRoot'"),
    ],
)
def test_schema_rejects_bad_values(
    chart: ModuleType, render: Callable[..., Manifest], values: str, message: str
) -> None:
    with pytest.raises(chart.HelmError) as error:
        render(values)
    assert "values don't meet the specifications of the schema" in str(error.value)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("replicas=0", "at '/replicas': minimum: got 0, want 1"),
        ("image.digest=latest", "at '/image/digest'"),
        ("serviceAccount.create=false", "at '/serviceAccount/name'"),
        ("logFormat=xml", "at '/logFormat': value must be one of 'json', 'plain'"),
    ],
)
def test_schema_rejects_bad_set_values(
    chart: ModuleType, render: Callable[..., Manifest], item: str, message: str
) -> None:
    with pytest.raises(chart.HelmError, match=re.escape(message)):
        render(set_values=(item,))


def test_reserved_env_is_refused_with_the_value_to_use(chart: ModuleType, render: Callable[..., Manifest]) -> None:
    message = "extraEnv: KVHA_LEASE_SECONDS is set by the chart; use leaderElection.leaseSeconds instead"
    with pytest.raises(chart.HelmError, match=re.escape(message)):
        render(set_values=("extraEnv[0].name=KVHA_LEASE_SECONDS", "extraEnv[0].value=5"))


def test_every_value_is_documented(chart: ModuleType) -> None:
    """values.yaml is the user's reference: each top-level key has a comment above it."""
    lines = (chart.CHART / "values.yaml").read_text().splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^[a-zA-Z]", line):
            block_commented = index > 0 and lines[index - 1].startswith("#")
            nested_commented = any(raw.lstrip().startswith("# --") for raw in lines[index + 1 : index + 4])
            assert block_commented or nested_commented, f"values.yaml: {line!r} has no comment"
