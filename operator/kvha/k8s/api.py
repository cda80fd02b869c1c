"""Typed, asynchronous wrappers for the few API calls kvha makes.

Each function is idempotent where the API allows (404 on delete is success), because after a
crash the next leader repeats the last step it cannot prove was done. RBAC in the Helm chart is
derived from exactly these calls: add a call here, add its rule there.

Every request carries a timeout, and every write first asks the leader's `WriteGuard`, in the
worker thread, immediately before the request leaves: a replica that can no longer prove it leads
refuses the write instead of racing the standby that has taken over.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kvha.constants import (
    GROUP,
    NODE_LEASE_NAMESPACE,
    OUT_OF_SERVICE_TAINT_EFFECT,
    OUT_OF_SERVICE_TAINT_KEY,
    OUT_OF_SERVICE_TAINT_VALUE,
    VERSION,
)
from kvha.leadership import WriteGuard

__all__ = ["Kube", "load_config"]

log = logging.getLogger(__name__)
JSON_PATCH = "application/json-patch+json"
P = ParamSpec("P")
T = TypeVar("T")


API_THREADS = 32
"""Threads that make the kubernetes client's blocking calls, and connections in its pool: one each.
asyncio's default executor has os.cpu_count() + 4 threads: on a 2-core machine 6, which held the
16 concurrent restarts of a failover (`CONCURRENT_ACTIONS`) to 6 at a time."""


def api_executor() -> ThreadPoolExecutor:
    """The event loop's default executor for the operator: `_threaded` calls run in it."""
    return ThreadPoolExecutor(max_workers=API_THREADS, thread_name_prefix="kvha-api")


def load_config() -> client.ApiClient:
    """In-cluster credentials when running as a pod, else the current kubeconfig."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    configuration = client.Configuration.get_default_copy()
    # Failover of many VMs issues many small calls at once; the default pool of 4 serialises them.
    configuration.connection_pool_maxsize = API_THREADS
    # urllib3 would retry a timed-out request up to three times, each with its own timeout: one
    # call could then outlast the leader's write deadline. A failed call is retried by the next tick.
    configuration.retries = False
    return client.ApiClient(configuration)


def _threaded(func: Callable[P, T]) -> Callable[P, Coroutine[Any, Any, T]]:
    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(func, *args, **kwargs)

    return wrapper


class Kube:
    """The API calls kvha makes, grouped so tests and RBAC checks can enumerate them."""

    def __init__(self, api_client: client.ApiClient, *, guard: WriteGuard | None = None, timeout: float = 30.0) -> None:
        self.api_client = api_client
        self.guard = guard if guard is not None else WriteGuard.unguarded()
        self.timeout = timeout
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.coordination = client.CoordinationV1Api(api_client)
        self._plurals: dict[tuple[str, str], str] = {}

    def _as_dict(self, obj: object) -> dict[str, Any]:
        """Models and dicts alike as the plain JSON dict the views parse."""
        if isinstance(obj, dict):
            return obj
        return cast(dict[str, Any], self.api_client.sanitize_for_serialization(obj))  # type: ignore[no-untyped-call]

    # --- nodes: the out-of-service taint ------------------------------------------------------
    @_threaded
    def set_out_of_service_taint(self, node: str, *, present: bool) -> bool:
        """Add or remove the non-graceful-shutdown taint; True if the node changed.

        Read-modify-write with the node's resourceVersion, so a concurrent change of the taints by
        the node lifecycle controller (unreachable/not-ready) is never overwritten.
        """
        for _ in range(5):
            body = self._as_dict(self.core.read_node(node, _request_timeout=self.timeout))
            taints: list[dict[str, Any]] = list((body.get("spec") or {}).get("taints") or [])
            has = any(t.get("key") == OUT_OF_SERVICE_TAINT_KEY for t in taints)
            if has == present:
                return False
            if present:
                taints.append(
                    {
                        "key": OUT_OF_SERVICE_TAINT_KEY,
                        "value": OUT_OF_SERVICE_TAINT_VALUE,
                        "effect": OUT_OF_SERVICE_TAINT_EFFECT,
                    }
                )
            else:
                taints = [t for t in taints if t.get("key") != OUT_OF_SERVICE_TAINT_KEY]
            patch = {"metadata": {"resourceVersion": body["metadata"]["resourceVersion"]}, "spec": {"taints": taints}}
            try:
                self.guard.check(f"tainting node {node}")
                self.core.patch_node(node, patch, _request_timeout=self.timeout)
            except ApiException as exc:
                if exc.status == 409:
                    continue  # someone else changed the node; read again
                raise
            return True
        raise RuntimeError(f"could not update taints of node {node}: too many conflicts")

    # --- fresh reads: what the cache may not show yet ------------------------------------------
    @_threaded
    def read_node(self, node: str) -> dict[str, Any] | None:
        """The Node as the API has it now (None if deleted), to confirm a verdict from the cache."""
        try:
            return self._as_dict(self.core.read_node(node))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    @_threaded
    def read_node_lease(self, node: str) -> dict[str, Any] | None:
        """The node's Lease in kube-node-lease as the API has it now (None if there is none).

        A list narrowed to the one name rather than a get: kvha may list Leases already (its
        index), while the get right on Leases is granted for its leader Lease by name only, and a
        cluster-wide get would undo that. Without a resourceVersion the list is a quorum read, as
        fresh as a get.
        """
        found = self._as_dict(
            self.coordination.list_namespaced_lease(NODE_LEASE_NAMESPACE, field_selector=f"metadata.name={node}")
        )
        items: list[dict[str, Any]] = found.get("items") or []
        return items[0] if items else None

    # --- the stuck instance -----------------------------------------------------------------------
    @_threaded
    def force_delete_pod(self, namespace: str, name: str) -> bool:
        """Delete with grace period 0: the kubelet of a fenced node will never confirm it."""
        try:
            self.guard.check(f"deleting pod {namespace}/{name}")
            response: Any = self.core.delete_namespaced_pod(
                name,
                namespace,
                grace_period_seconds=0,
                body=client.V1DeleteOptions(grace_period_seconds=0),
                _request_timeout=self.timeout,
                # The deleted Pod comes back in the response; kvha never reads it, and turning it
                # into the client's V1Pod models costs more CPU than the call (errors still raise).
                _preload_content=False,
            )
            response.drain_conn()
            response.release_conn()
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        log.info("force-deleted pod %s/%s", namespace, name)
        return True

    # --- kvha's own objects -----------------------------------------------------------------------
    @_threaded
    def create_nodefailover(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create the incident record; None if it exists (another tick or leader made it)."""
        try:
            self.guard.check("creating a NodeFailover")
            result = self._as_dict(
                self.custom.create_cluster_custom_object(
                    GROUP, VERSION, "nodefailovers", body, _request_timeout=self.timeout
                )
            )
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise
        return result

    @_threaded
    def list_nodefailovers(self, *, label_selector: str) -> list[dict[str, Any]]:
        """NodeFailovers as the API has them now: whether another incident of a node still needs
        its taint is decided from this, not from a cache that may lag behind a deletion."""
        found = self._as_dict(
            self.custom.list_cluster_custom_object(
                GROUP, VERSION, "nodefailovers", label_selector=label_selector, _request_timeout=self.timeout
            )
        )
        items: list[dict[str, Any]] = found.get("items") or []
        return items

    @_threaded
    def patch_status(self, plural: str, name: str, status: dict[str, Any], *, resource_version: str) -> bool:
        """Write a status computed from the object at `resource_version`; False on a conflict.

        The version is a precondition: a tick that computed from an older copy than the stored
        one (a watch event not yet delivered, or another leader's write) must not overwrite
        what that newer write recorded. The caller skips the step and computes again.
        """
        patch = {"metadata": {"resourceVersion": resource_version}, "status": status}
        try:
            self.guard.check(f"writing the status of {plural}/{name}")
            self.custom.patch_cluster_custom_object_status(
                GROUP, VERSION, plural, name, patch, _request_timeout=self.timeout
            )
        except ApiException as exc:
            if exc.status == 409:
                log.info("status of %s/%s changed since version %s; computing again", plural, name, resource_version)
                return False
            raise
        return True

    # --- medik8s-style remediation objects ---------------------------------------------------
    async def plural(self, *, api_version: str, kind: str) -> str:
        """The resource name the API server serves `kind` of `api_version` under, as its discovery
        says (a CRD's plural is whatever its author chose; guessing English plurals is wrong for
        some). One GET per group version, then cached: a served plural does not change while the
        CRD exists. LookupError if it is not served (yet), and that is asked again next time."""
        if (api_version, kind) not in self._plurals:
            self._plurals.update(await self._discover(api_version))
        try:
            return self._plurals[(api_version, kind)]
        except KeyError:
            raise LookupError(f"the API server serves no {kind} in {api_version}: is its CRD installed?") from None

    @_threaded
    def _discover(self, api_version: str) -> dict[tuple[str, str], str]:
        """(apiVersion, kind) → plural of every resource of one group version; subresources
        (`name/status`) left out. Discovery is readable by every authenticated user
        (system:discovery), so it needs no RBAC entry."""
        group, version = api_version.split("/")
        try:
            found = self._as_dict(self.custom.get_api_resources(group, version, _request_timeout=self.timeout))
        except ApiException as exc:
            if exc.status == 404:  # the group version is not served at all
                return {}
            raise
        resources: list[dict[str, Any]] = found.get("resources") or []
        return {(api_version, str(r["kind"])): str(r["name"]) for r in resources if "/" not in str(r["name"])}

    @_threaded
    def get_object(self, *, api_version: str, plural: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        group, version = api_version.split("/")
        try:
            if namespace:
                obj = self.custom.get_namespaced_custom_object(
                    group, version, namespace, plural, name, _request_timeout=self.timeout
                )
            else:
                obj = self.custom.get_cluster_custom_object(group, version, plural, name, _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return self._as_dict(obj)

    @_threaded
    def create_object(self, *, api_version: str, plural: str, body: dict[str, Any], namespace: str) -> bool:
        """True if created; False if an object of that name exists. That is not success: it may be
        someone else's (node-healthcheck-operator names its remediations after the node too)."""
        group, version = api_version.split("/")
        try:
            self.guard.check(f"creating {plural} {namespace}/{body.get('metadata', {}).get('name')}")
            self.custom.create_namespaced_custom_object(
                group, version, namespace, plural, body, _request_timeout=self.timeout
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    @_threaded
    def delete_object(
        self, *, api_version: str, plural: str, name: str, namespace: str, uid: str | None = None
    ) -> bool:
        """Delete; with `uid`, only that very object (a uid precondition), never one that replaced
        it under the same name. False if there was nothing (of that uid) to delete."""
        group, version = api_version.split("/")
        options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid) if uid else None)
        try:
            self.guard.check(f"deleting {plural} {namespace}/{name}")
            self.custom.delete_namespaced_custom_object(
                group, version, namespace, plural, name, body=options, _request_timeout=self.timeout
            )
        except ApiException as exc:
            if exc.status in (404, 409):  # gone, or the precondition failed: not the object we made
                return False
            raise
        return True


async def remove_node_annotation_if(kube: Kube, node: str, key: str, value: str) -> bool:
    """Remove one annotation from a Node only while it has `value` (a JSON patch test), so a value
    written since by someone else stays. False if it had another value or none."""
    path = "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")
    patch = [{"op": "test", "path": path, "value": value}, {"op": "remove", "path": path}]

    def call() -> None:
        kube.guard.check(f"annotating node {node}")
        kube.core.patch_node(node, patch, _content_type=JSON_PATCH, _request_timeout=kube.timeout)

    try:
        await asyncio.to_thread(call)
    except ApiException as exc:
        if exc.status in (404, 409, 422):  # no such node, or the test failed (value changed or gone)
            return False
        raise
    return True
