"""In-memory indices of the cluster, kept current by kvha's own caches (`kvha.k8s.informer`).

Handlers build their snapshots from these instead of listing the API, so an incident costs API
requests in proportion to the VMs it moves, not to the size of the cluster. Each index holds the
small read-only views of `kvha.models.views`, never whole objects, to keep memory low at scale.
The caches run on every replica from start-up, so a standby that takes over has them warm.
"""

from __future__ import annotations

from typing import Any

from kvha import metrics
from kvha.constants import (
    FAILOVER_NODE_LABEL,
    GROUP,
    KUBEVIRT_GROUP,
    KUBEVIRT_LAUNCHER_LABEL,
    NODE_LEASE_NAMESPACE,
    VERSION,
    VMI_KIND,
)
from kvha.handlers.freshness import SIGHTINGS, clock
from kvha.k8s.informer import CACHES, Obj, Resource, index
from kvha.models.hapolicy import FailoverPhase
from kvha.models.timeutil import parse_time, utcnow
from kvha.models.views import ClaimView, LeaseView, NodeView, PodView, VMIView, VMView
from kvha.reconcile.policy import FailoverRecord

VMKey = tuple[str, str]


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _key(obj: Obj) -> VMKey:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name", "")))


# The node and lease indices also record when kvha saw each value change: detection times the
# node's silence from those sightings, never from the timestamps the node wrote.
@index("", "v1", "nodes")
def node_index(obj: Obj) -> dict[str, NodeView]:
    view = NodeView.from_api(obj)
    SIGHTINGS.observe_node(view, now=clock())
    return {view.name: view}


# Only the node heartbeats: listing every Lease of the cluster would cost for nothing.
@index("coordination.k8s.io", "v1", "leases", namespace=NODE_LEASE_NAMESPACE)
def lease_index(obj: Obj) -> dict[str, LeaseView]:
    view = LeaseView.from_api(obj)
    SIGHTINGS.observe_lease(view, now=clock())
    return {_name(obj): view}


def _lease_event_lag(obj: Obj | None) -> None:
    if obj is None:
        return  # a list, not an event: the lag of a list says nothing about the watch
    renewed = parse_time((obj.get("spec") or {}).get("renewTime"))
    if renewed is not None:
        metrics.observe_lease_event_lag((utcnow() - renewed).total_seconds())


CACHES.cache(Resource("coordination.k8s.io", "v1", "leases", NODE_LEASE_NAMESPACE)).watchers.append(_lease_event_lag)


@index("", "v1", "namespaces")
def namespace_index(obj: Obj) -> dict[str, dict[str, str]]:
    return {_name(obj): dict((obj.get("metadata") or {}).get("labels") or {})}


@index("", "v1", "pods")
def pods_by_node(obj: Obj) -> dict[str, PodView] | None:
    """Pods bound to a node: their requests are what makes a node full."""
    node = (obj.get("spec") or {}).get("nodeName")
    return {node: PodView.from_api(obj)} if node else None


@index("", "v1", "pods")
def launchers_by_vmi(obj: Obj) -> dict[str, PodView] | None:
    """virt-launcher pods by the uid of the VMI that controls them. Keyed by the controller
    ownerReference, not by the `kubevirt.io/created-by` label: any tenant can write that label on
    a pod of theirs, naming another tenant's VMI (the planner checks the owner again)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if labels.get(KUBEVIRT_LAUNCHER_LABEL) != "virt-launcher":
        return None
    view = PodView.from_api(obj)
    if view.controller_kind != VMI_KIND or not view.controller_uid:
        return None
    return {view.controller_uid: view}


@index(KUBEVIRT_GROUP, "v1", "virtualmachines")
def vm_index(obj: Obj) -> dict[VMKey, VMView]:
    return {_key(obj): VMView.from_api(obj)}


@index(KUBEVIRT_GROUP, "v1", "virtualmachineinstances")
def vmi_index(obj: Obj) -> dict[str, VMIView]:
    """By `namespace/name`, the core's VM key."""
    view = VMIView.from_api(obj)
    return {f"{view.namespace}/{view.name}": view}


@index("", "v1", "persistentvolumeclaims")
def claim_index(obj: Obj) -> dict[VMKey, ClaimView]:
    return {_key(obj): ClaimView.from_api(obj)}


@index(GROUP, VERSION, "hapolicies")
def policy_index(obj: Obj) -> dict[str, dict[str, Any]]:
    return {
        _name(obj): {
            "spec": dict(obj.get("spec") or {}),
            "status": dict(obj.get("status") or {}),
            "generation": (obj.get("metadata") or {}).get("generation"),
        }
    }


@index(GROUP, VERSION, "nodefailovers")
def failovers_by_node(obj: Obj) -> dict[str, FailoverRecord]:
    name, spec, status = _name(obj), obj.get("spec") or {}, obj.get("status") or {}
    labels = (obj.get("metadata") or {}).get("labels") or {}
    node = spec.get("nodeName") or labels.get(FAILOVER_NODE_LABEL, "")
    return {
        node: FailoverRecord(
            name=name,
            node=node,
            policy=str(spec.get("policyName", "")),
            phase=FailoverPhase(status.get("phase", FailoverPhase.DETECTED)),
            detected_at=parse_time(spec.get("detectedAt")),
            waiting=int(status.get("waiting") or 0),
            finished=bool(status.get("finished", False)),
            recovered=bool((status.get("fencing") or {}).get("recoveredAt")),
        )
    }
