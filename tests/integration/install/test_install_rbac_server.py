"""The API server's own answer: the chart's ServiceAccount may do exactly what
kvha.k8s.permissions lists, and none of what it must never do.

The unit tests compare the chart's rules with the table as YAML; here RBAC evaluation itself
decides (aggregation, resourceNames, namespaces, subresources), as it will in a user's cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from install_cluster import Kubectl, Release
from kubernetes.client.exceptions import ApiException

from kvha.k8s.leader import LeaderElector, LeaseConfig
from kvha.k8s.permissions import NEVER_GRANTED, PERMISSIONS, Scope, Triple, triples
from kvha_testbed.scenario import Scenario
from kvha_testbed.testbed import Testbed

pytestmark = pytest.mark.integration

# Rules every authenticated user has (system:basic-user, system:discovery); not the chart's doing.
BUILT_IN_GROUPS = {"authorization.k8s.io", "authentication.k8s.io"}


@dataclass
class Account:
    release: Release
    kubeconfig: Path
    lease: str
    api: Any  # kubernetes.client.ApiClient authenticated as the ServiceAccount

    def can(self, triple: Triple, *, namespace: str = "", name: str = "") -> bool:
        group, resource, verb = triple
        resource, _, subresource = resource.partition("/")
        review = kubernetes.client.AuthorizationV1Api(self.api).create_self_subject_access_review(
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {
                    "resourceAttributes": {
                        "group": group,
                        "resource": resource,
                        "subresource": subresource,
                        "verb": verb,
                        "namespace": namespace,
                        "name": name,
                    }
                },
            }
        )
        return bool(review.status.allowed)


@pytest.fixture
def account(plane: Testbed, kubectl: Kubectl, release: Callable[..., Release]) -> Account:
    rel = release("kvha-rbac")
    kubectl(
        "apply",
        "--server-side",
        "-f",
        "-",
        # The admission policy too: the failover below must pass with all of the chart's limits.
        stdin=rel.only(
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ),
    )
    name = rel.find("ServiceAccount")["metadata"]["name"]
    kubeconfig = plane.serviceaccount_kubeconfig(rel.namespace, name, create=False)
    env = rel.find("Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    lease = next(e["value"] for e in env if e["name"] == "KVHA_LEASE_NAME")
    return Account(release=rel, kubeconfig=kubeconfig, lease=lease, api=plane.kubernetes_client(kubeconfig))


def test_can_do_every_entry_of_the_table(account: Account) -> None:
    ns = account.release.namespace
    denied = []
    for permission in PERMISSIONS:
        for triple in permission.triples():
            if permission.scope is Scope.CLUSTER:
                allowed = account.can(triple) and account.can(triple, namespace="some-tenant")
            elif permission.scope is Scope.RELEASE_NAMESPACE:
                allowed = account.can(triple, namespace=ns)
            else:
                allowed = account.can(triple, namespace=ns, name=account.lease)
            if not allowed:
                denied.append(f"{triple} ({permission.scope}) for {permission.used_by}")
    assert not denied, "the chart's ServiceAccount is refused what kvha needs:\n" + "\n".join(denied)


def test_cannot_do_what_kvha_must_never_do(account: Account) -> None:
    allowed = [t for t in NEVER_GRANTED if account.can(t) or account.can(t, namespace=account.release.namespace)]
    assert not allowed, f"the chart's ServiceAccount may {allowed}"


def test_leader_lease_rights_are_confined(account: Account) -> None:
    ns = account.release.namespace
    lease_update = ("coordination.k8s.io", "leases", "update")
    assert account.can(lease_update, namespace=ns, name=account.lease)
    assert not account.can(lease_update, namespace=ns, name="someone-elses-lease")
    assert not account.can(lease_update, namespace="kube-node-lease", name="worker-1")
    assert not account.can(("coordination.k8s.io", "leases", "create"), namespace="kube-node-lease")
    assert not account.can(("coordination.k8s.io", "leases", "delete"), namespace=ns, name=account.lease)


def _granted_to_every_user(plane: Testbed) -> set[Triple]:
    """What ClusterRoleBindings give the group system:authenticated (KubeVirt grants every user
    its `kubevirt.io:default` and instancetype-view roles, as in a real cluster)."""
    triples_: set[Triple] = set()
    bindings, _ = plane.client.list("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings")
    for binding in bindings:
        subjects = binding.get("subjects") or []
        if not any(s.get("kind") == "Group" and s.get("name") == "system:authenticated" for s in subjects):
            continue
        role = plane.client.get(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{binding['roleRef']['name']}")
        for rule in role.get("rules") or []:
            triples_ |= {
                (g, r, v)
                for g in rule.get("apiGroups") or []
                for r in rule.get("resources") or []
                for v in rule["verbs"]
            }
    return triples_


def test_server_lists_exactly_the_table(plane: Testbed, account: Account, kubectl: Kubectl) -> None:
    """`kubectl auth can-i --list` (a SelfSubjectRulesReview) in the release namespace: the chart's
    rules plus the ones every user has, and nothing else."""
    review = kubernetes.client.AuthorizationV1Api(account.api).create_self_subject_rules_review(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": account.release.namespace},
        }
    )
    listed: set[Triple] = set()
    for rule in review.status.resource_rules:
        if set(rule.api_groups or []) <= BUILT_IN_GROUPS:
            continue
        listed |= {(g, r, v) for g in rule.api_groups for r in rule.resources for v in rule.verbs}
    assert listed - (_granted_to_every_user(plane) - triples()) == triples()
    # The same, the way a user would look (smoke test of the documented command).
    out = kubectl("auth", "can-i", "--list", "-n", account.release.namespace, kubeconfig=account.kubeconfig)
    assert "nodes" in out
    assert "secrets" not in out


def test_leader_election_works_with_the_chart_rbac(account: Account) -> None:
    """kvha's own leader election, as the ServiceAccount: create, renew, release the Lease."""
    config = LeaseConfig(namespace=account.release.namespace, name=account.lease, identity="kvha-test-0")
    elector = LeaderElector(account.api, config)
    assert elector.try_acquire_or_renew()  # creates the Lease
    assert elector.try_acquire_or_renew()  # renews it (get + update, by name)
    elector.release()
    rival = LeaderElector(
        account.api, LeaseConfig(namespace=account.release.namespace, name=account.lease, identity="kvha-test-1")
    )
    assert rival.try_acquire_or_renew(), "a released Lease is free at once"
    squatter = LeaderElector(
        account.api, LeaseConfig(namespace=account.release.namespace, name="other-lease", identity="kvha-test-2")
    )
    with pytest.raises(ApiException) as refused:
        squatter.try_acquire_or_renew()  # reading (and so renewing) another Lease is refused
    assert refused.value.status == 403


def test_failover_runs_with_only_the_chart_rbac(account: Account, scenario: Scenario) -> None:
    """The operator as the chart's ServiceAccount, not as admin: a whole power-off failover
    (detect, fence with the out-of-service taint, restart, report) must succeed with that RBAC."""
    [host_a] = scenario.nodes(1, memory="16Gi")
    scenario.vm("guarded", memory="1Gi")
    scenario.bed.wait_vm_status(scenario.namespace, "guarded", "Running")
    scenario.nodes(2, memory="16Gi")
    old_uid = scenario.vmi_uid("guarded")
    scenario.policy(fencing={"strategy": "OutOfServiceTaint", "confirmation": "Manual"})
    operator = scenario.operator(
        "kvha-rbac-0",
        kubeconfig=account.kubeconfig,
        namespace=account.release.namespace,
        env={"KVHA_LEASE_NAME": account.lease},
    ).start()

    scenario.bed.faults.power_off(host_a)
    scenario.failover(phase="Fencing")
    scenario.confirm_fenced(host_a)
    failover = scenario.failover(phase="Completed", timeout=90)
    assert failover["status"]["restored"] == 1
    assert scenario.vmi_uid("guarded") != old_uid
    assert scenario.policy_status()["protectedVms"] == 1
    assert "Forbidden" not in operator.log_tail(400), operator.log_tail(40)
    assert " 403" not in operator.log_tail(400), operator.log_tail(40)
