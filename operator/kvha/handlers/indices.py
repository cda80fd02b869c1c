"""In-memory indices of the cluster, kept current by kopf's watches.

Handlers build their snapshots from these instead of listing the API, so an incident costs API
requests in proportion to the VMs it moves, not to the size of the cluster. Each index holds the
small read-only views of `kvha.models.views`, never whole objects, to keep memory low at scale.
"""

from __future__ import annotations

from typing import Any

import kopf

from kvha.constants import FAILOVER_NODE_LABEL, GROUP, KUBEVIRT_GROUP, NODE_LEASE_NAMESPACE, VERSION
from kvha.handlers.freshness import SIGHTINGS, clock
from kvha.models.timeutil import parse_time
from kvha.models.views import ClaimView, LeaseView, NodeView, PodView, VMIView, VMView
from kvha.reconcile.policy import FailoverRecord

VMKey = tuple[str, str]


# The node and lease indices also record when kvha saw each value change: detection times the
# node's silence from those sightings, never from the timestamps the node wrote.
@kopf.index("", "v1", "nodes")
def node_index(name: str, body: kopf.Body, **_: Any) -> dict[str, NodeView]:
    view = NodeView.from_api(body)
    SIGHTINGS.observe_node(view, now=clock())
    return {name: view}


@kopf.index("coordination.k8s.io", "v1", "leases", when=lambda namespace, **_: namespace == NODE_LEASE_NAMESPACE)
def lease_index(name: str, body: kopf.Body, **_: Any) -> dict[str, LeaseView]:
    view = LeaseView.from_api(body)
    SIGHTINGS.observe_lease(view, now=clock())
    return {name: view}


@kopf.index("", "v1", "namespaces")
def namespace_index(name: str, labels: kopf.Labels, **_: Any) -> dict[str, dict[str, str]]:
    return {name: dict(labels)}


@kopf.index("", "v1", "pods")
def pods_by_node(body: kopf.Body, spec: kopf.Spec, **_: Any) -> dict[str, PodView] | None:
    """Pods bound to a node: their requests are what makes a node full."""
    node = spec.get("nodeName")
    return {node: PodView.from_api(body)} if node else None


@kopf.index("", "v1", "pods", labels={"kubevirt.io": "virt-launcher"})
def launchers_by_vmi(body: kopf.Body, **_: Any) -> dict[str, PodView] | None:
    view = PodView.from_api(body)
    return {view.vmi_uid: view} if view.vmi_uid else None


@kopf.index(KUBEVIRT_GROUP, "v1", "virtualmachines")
def vm_index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[VMKey, VMView]:
    return {(namespace or "", name): VMView.from_api(body)}


@kopf.index(KUBEVIRT_GROUP, "v1", "virtualmachineinstances")
def vmi_index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[VMKey, VMIView]:
    return {(namespace or "", name): VMIView.from_api(body)}


@kopf.index(KUBEVIRT_GROUP, "v1", "virtualmachineinstances")
def vmis_by_node(body: kopf.Body, **_: Any) -> dict[str, VMIView] | None:
    view = VMIView.from_api(body)
    return {view.node_name: view} if view.node_name else None


@kopf.index("", "v1", "persistentvolumeclaims")
def claim_index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[VMKey, ClaimView]:
    return {(namespace or "", name): ClaimView.from_api(body)}


@kopf.index(GROUP, VERSION, "hapolicies")
def policy_index(name: str, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    return {
        name: {
            "spec": dict(body.get("spec") or {}),
            "status": dict(body.get("status") or {}),
            "generation": body.get("metadata", {}).get("generation"),
        }
    }


@kopf.index(GROUP, VERSION, "nodefailovers")
def failovers_by_node(
    name: str, labels: kopf.Labels, spec: kopf.Spec, status: kopf.Status, **_: Any
) -> dict[str, FailoverRecord]:
    node = spec.get("nodeName") or labels.get(FAILOVER_NODE_LABEL, "")
    return {
        node: FailoverRecord(
            name=name,
            node=node,
            policy=str(spec.get("policyName", "")),
            phase=str(status.get("phase", "Detected")),
            detected_at=parse_time(spec.get("detectedAt")),
            waiting=int(status.get("waiting") or 0),
            finished=bool(status.get("finished", False)),
            recovered=bool((status.get("fencing") or {}).get("recoveredAt")),
        )
    }


def only(store: Any) -> Any:
    """The single value of an index key whose key is unique (a name), or None."""
    if store is None:
        return None
    for value in store:
        return value
    return None
