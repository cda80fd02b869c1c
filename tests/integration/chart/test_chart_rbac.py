"""The chart's ClusterRole and Role grant exactly the table in kvha.k8s.permissions, without
wildcards, named for the release. (That the code needs exactly the table is checked by the unit
tier, in tests/unit/install/test_install_rbac.py.)"""

from __future__ import annotations

from typing import Any

from install_testing import Manifest, find
from kvha.k8s.permissions import Scope, Triple, triples


def _rules(docs: Manifest, kind: str) -> list[dict[str, Any]]:
    return list(find(docs, kind)["rules"])


def _flatten(rules: list[dict[str, Any]]) -> set[Triple]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_chart_grants_exactly_the_table(defaults: Manifest) -> None:
    cluster = _rules(defaults, "ClusterRole")
    assert _flatten(cluster) == triples(scopes=[Scope.CLUSTER])
    namespaced = _rules(defaults, "Role")
    env = find(defaults, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    lease = next(e["value"] for e in env if e["name"] == "KVHA_LEASE_NAME")
    by_name = [r for r in namespaced if r.get("resourceNames")]
    assert all(r["resourceNames"] == [lease] for r in by_name)
    assert _flatten(by_name) == triples(scopes=[Scope.LEADER_LEASE])
    anywhere = [r for r in namespaced if not r.get("resourceNames")]
    assert _flatten(anywhere) == triples(scopes=[Scope.RELEASE_NAMESPACE])


def test_no_wildcards(defaults: Manifest) -> None:
    for kind in ("ClusterRole", "Role"):
        for rule in _rules(defaults, kind):
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(key, []), f"{kind} rule {rule} uses a wildcard"
            assert "nonResourceURLs" not in rule


def test_rbac_is_named_for_the_release(defaults: Manifest) -> None:
    binding = find(defaults, "ClusterRoleBinding")
    account = find(defaults, "ServiceAccount")
    assert binding["roleRef"]["name"] == find(defaults, "ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "kvha-system"}
    ]
    assert find(defaults, "RoleBinding")["subjects"] == binding["subjects"]
    deployment = find(defaults, "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
