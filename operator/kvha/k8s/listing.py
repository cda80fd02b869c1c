"""Read-only LIST calls for `kvha plan` and `kvha status`: the objects the operator's watches
deliver, read once with the user's kubeconfig and parsed into the same views the operator uses.

Nothing here writes. Each call has a timeout; the responses are parsed from JSON directly (the
client's model classes would cost seconds on a large cluster and be turned back into dicts anyway).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config

from kvha.constants import GROUP, KUBEVIRT_GROUP, NODE_LEASE_NAMESPACE, VERSION
from kvha.models.views import ClaimView, LeaseView, NodeView, PodView, VMIView, VMView
from kvha.reconcile.what_if import ClusterRead

Obj = dict[str, Any]


def user_client(*, context: str | None = None) -> client.ApiClient:
    """The user's kubeconfig (or in-cluster credentials when run in a pod)."""
    try:
        config.load_kube_config(context=context)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    configuration = client.Configuration.get_default_copy()
    configuration.retries = False
    return client.ApiClient(configuration)


@dataclass(frozen=True)
class Lister:
    api_client: client.ApiClient
    timeout: float = 30.0

    @property
    def server(self) -> str:
        return str(self.api_client.configuration.host)

    def _items(self, call: Any, *args: Any, **kwargs: Any) -> list[Obj]:
        response = call(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
        items: list[Obj] = json.loads(response.data).get("items") or []
        return items

    def custom(self, group: str, version: str, plural: str) -> list[Obj]:
        api = client.CustomObjectsApi(self.api_client)
        return self._items(api.list_cluster_custom_object, group, version, plural)

    def policies(self) -> list[Obj]:
        return self.custom(GROUP, VERSION, "hapolicies")

    def failovers(self) -> list[Obj]:
        return self.custom(GROUP, VERSION, "nodefailovers")

    def cluster(self) -> ClusterRead:
        """Everything a policy evaluation and an incident plan read, as of now."""
        core = client.CoreV1Api(self.api_client)
        coordination = client.CoordinationV1Api(self.api_client)
        vmis = [VMIView.from_api(o) for o in self.custom(KUBEVIRT_GROUP, "v1", "virtualmachineinstances")]
        claims = [ClaimView.from_api(o) for o in self._items(core.list_persistent_volume_claim_for_all_namespaces)]
        return ClusterRead(
            nodes=[NodeView.from_api(o) for o in self._items(core.list_node)],
            leases={
                lease.node_name: lease
                for lease in (
                    LeaseView.from_api(o) for o in self._items(coordination.list_namespaced_lease, NODE_LEASE_NAMESPACE)
                )
            },
            vms=[VMView.from_api(o) for o in self.custom(KUBEVIRT_GROUP, "v1", "virtualmachines")],
            namespace_labels={
                str(o["metadata"]["name"]): dict(o["metadata"].get("labels") or {})
                for o in self._items(core.list_namespace)
            },
            vmis={vmi.key: vmi for vmi in vmis},
            pods=[
                p
                for p in (PodView.from_api(o) for o in self._items(core.list_pod_for_all_namespaces))
                if p.node_name is not None
            ],
            claims={(c.namespace, c.name): c for c in claims},
            now=datetime.now(UTC),
        )
