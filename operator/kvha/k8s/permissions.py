"""Every Kubernetes permission kvha needs, with the code that needs it.

The Helm chart's ClusterRole and Role (charts/kvha/templates/clusterrole.yaml, role.yaml) grant
exactly this table, and tests hold all three together: `tests/unit/install/test_install_rbac.py`
derives the calls and watches from the code (k8s/api.py, k8s/leader.py, the kopf handlers) and
fails when one is missing here or when an entry here points at code that does not make that call;
`tests/integration/chart/test_chart_rbac.py` fails when the chart grants more or less than
this; the integration tests ask the API server whether the chart's
ServiceAccount can do each entry. Add an API call, add its entry here and its rule to the chart.

API discovery (`Kube.plural`) has no entry: Kubernetes' default system:discovery role lets every
authenticated user read it.

`used_by` points at the code as "module:qualified.name", or as "module" for "the kopf handlers of
this module" (kopf patches the objects of its change handlers: finalizer, progress annotations).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from kvha.constants import GROUP, KUBEVIRT_GROUP

__all__ = ["NEVER_GRANTED", "PERMISSIONS", "Permission", "Scope", "Triple", "triples"]

Triple = tuple[str, str, str]
"""(API group, resource or resource/subresource, verb), the unit RBAC grants."""

MEDIK8S_SNR_GROUP = "self-node-remediation.medik8s.io"
MEDIK8S_FAR_GROUP = "fence-agents-remediation.medik8s.io"


class Scope(enum.StrEnum):
    CLUSTER = "cluster"
    """Granted by the ClusterRole: any namespace, and cluster-scoped resources."""
    RELEASE_NAMESPACE = "release-namespace"
    """Granted by the Role in the operator's own namespace."""
    LEADER_LEASE = "leader-lease"
    """Granted by the Role, restricted to the leader Lease by name (resourceNames)."""


@dataclass(frozen=True)
class Permission:
    group: str
    resource: str
    verbs: tuple[str, ...]
    used_by: tuple[str, ...]
    why: str
    scope: Scope = Scope.CLUSTER

    def triples(self) -> Iterator[Triple]:
        for verb in self.verbs:
            yield (self.group, self.resource, verb)


_MODULE_API = "kvha.k8s.api:"
_API = f"{_MODULE_API}Kube."
_LEADER = "kvha.k8s.leader:LeaderElector."
_INDICES = "kvha.handlers.indices:"

PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "",
        "nodes",
        ("list", "watch"),
        (f"{_INDICES}node_index",),
        "detect failed nodes from their conditions, taints and annotations",
    ),
    Permission(
        "",
        "nodes",
        ("get",),
        (f"{_API}set_out_of_service_taint", f"{_API}read_node"),
        "read the taints before changing them (read-modify-write with resourceVersion); confirm a "
        "verdict from the cache with a fresh read before opening an incident or fencing",
    ),
    Permission(
        "",
        "nodes",
        ("patch",),
        (f"{_API}set_out_of_service_taint", f"{_MODULE_API}remove_node_annotation_if"),
        "add and remove the out-of-service taint; remove a used kvha.io/fence-confirmed annotation",
    ),
    Permission(
        "coordination.k8s.io",
        "leases",
        ("list", "watch"),
        (f"{_INDICES}lease_index", f"{_API}read_node_lease"),
        "node heartbeats, watched in kube-node-lease only; one Lease listed by name to confirm a "
        "verdict before opening an incident or fencing",
    ),
    Permission(
        "",
        "namespaces",
        ("list", "watch"),
        (f"{_INDICES}namespace_index",),
        "namespace labels for HAPolicy namespaceSelector",
    ),
    Permission(
        "",
        "pods",
        ("list", "watch"),
        (f"{_INDICES}pods_by_node", f"{_INDICES}launchers_by_vmi"),
        "requests per node for capacity, and the virt-launcher pod of each VMI",
    ),
    Permission(
        "", "pods", ("delete",), (f"{_API}force_delete_pod",), "force-delete the launcher of a VMI on a fenced node"
    ),
    Permission(
        "",
        "persistentvolumeclaims",
        ("list", "watch"),
        (f"{_INDICES}claim_index",),
        "volume access modes decide whether unfenced restart is safe",
    ),
    Permission(
        KUBEVIRT_GROUP,
        "virtualmachines",
        ("list", "watch"),
        (f"{_INDICES}vm_index",),
        "which VMs a policy protects, and their run strategy",
    ),
    Permission(
        KUBEVIRT_GROUP,
        "virtualmachineinstances",
        ("list", "watch"),
        (f"{_INDICES}vmi_index",),
        "where each VM runs, and its phase",
    ),
    Permission(
        GROUP,
        "hapolicies",
        ("list", "watch"),
        (f"{_INDICES}policy_index", "kvha.handlers.policies:reconcile_policy"),
        "the policies",
    ),
    Permission(
        GROUP,
        "hapolicies",
        ("patch",),
        ("kvha.handlers.policies:reconcile_policy",),
        "kopf's finalizer on HAPolicies (its daemons need one) and its progress annotations",
    ),
    Permission(
        GROUP,
        "hapolicies/status",
        ("patch",),
        (f"{_API}patch_status",),
        "conditions, counts and capacity of each policy",
    ),
    Permission(
        GROUP,
        "nodefailovers",
        ("list", "watch"),
        (
            f"{_INDICES}failovers_by_node",
            "kvha.handlers.failovers:drive_failover",
            "kvha.handlers.failovers:release_failover",
            f"{_API}list_nodefailovers",
        ),
        "open incidents per node; a deleted incident reads the node's others before removing its taint",
    ),
    Permission(
        GROUP, "nodefailovers", ("create",), (f"{_API}create_nodefailover",), "one incident record per node failure"
    ),
    Permission(
        GROUP,
        "nodefailovers",
        ("patch",),
        ("kvha.handlers.failovers:drive_failover", "kvha.handlers.failovers:release_failover"),
        "kopf's finalizer on NodeFailovers (its daemons and the clean-up on deletion need one) and its "
        "progress annotations",
    ),
    Permission(
        GROUP,
        "nodefailovers/status",
        ("patch",),
        (f"{_API}patch_status",),
        "phase, fencing progress and per-VM state of an incident",
    ),
    Permission(
        "",
        "events",
        ("create",),
        ("kvha.handlers.events:post", "kvha.handlers.failovers:advance"),
        "Events on VMs, nodes, policies and incidents (kopf.event, kopf.warn)",
    ),
    Permission(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        ("list", "watch"),
        ("kopf._core.reactor.observation:resource_observer",),
        "kopf notices KubeVirt or kvha CRDs installed after the operator started",
    ),
    Permission(
        MEDIK8S_SNR_GROUP,
        "selfnoderemediationtemplates",
        ("get",),
        (f"{_API}get_object",),
        "fencing strategy Remediation: read the template a policy names",
    ),
    Permission(
        MEDIK8S_SNR_GROUP,
        "selfnoderemediations",
        ("get", "create", "delete"),
        (f"{_API}get_object", f"{_API}create_object", f"{_API}delete_object"),
        "fencing strategy Remediation: create, poll and delete the remediation",
    ),
    Permission(
        MEDIK8S_FAR_GROUP,
        "fenceagentsremediationtemplates",
        ("get",),
        (f"{_API}get_object",),
        "fencing strategy Remediation: read the template a policy names",
    ),
    Permission(
        MEDIK8S_FAR_GROUP,
        "fenceagentsremediations",
        ("get", "create", "delete"),
        (f"{_API}get_object", f"{_API}create_object", f"{_API}delete_object"),
        "fencing strategy Remediation: create, poll and delete the remediation",
    ),
    Permission(
        "coordination.k8s.io",
        "leases",
        ("create",),
        (f"{_LEADER}try_acquire_or_renew",),
        "create the leader Lease the first time",
        scope=Scope.RELEASE_NAMESPACE,
    ),
    Permission(
        "coordination.k8s.io",
        "leases",
        ("get", "update"),
        (f"{_LEADER}try_acquire_or_renew", f"{_LEADER}release"),
        "read, renew and release the leader Lease",
        scope=Scope.LEADER_LEASE,
    ),
)


NEVER_GRANTED: tuple[Triple, ...] = (
    ("", "secrets", "get"),
    ("", "secrets", "list"),
    ("", "configmaps", "get"),
    ("", "nodes", "delete"),
    ("", "nodes", "update"),
    ("", "pods", "create"),
    ("", "pods/exec", "create"),
    ("", "serviceaccounts/token", "create"),
    ("kubevirt.io", "virtualmachines", "patch"),
    ("kubevirt.io", "virtualmachines", "delete"),
    ("kubevirt.io", "virtualmachineinstances", "delete"),
    ("kvha.io", "hapolicies", "delete"),
    ("rbac.authorization.k8s.io", "clusterroles", "bind"),
    ("rbac.authorization.k8s.io", "clusterrolebindings", "create"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "update"),
)
"""What kvha must never be able to do, whatever a future change adds: read secrets, delete nodes,
write VirtualMachines (GitOps owns them), escalate. Checked against the table and, in the
integration tests, against the API server's answer for the chart's ServiceAccount."""


def triples(permissions: Iterable[Permission] = PERMISSIONS, *, scopes: Iterable[Scope] = tuple(Scope)) -> set[Triple]:
    """The (group, resource, verb) set of the given permissions, restricted to some scopes."""
    wanted = set(scopes)
    return {triple for p in permissions if p.scope in wanted for triple in p.triples()}
