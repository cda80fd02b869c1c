"""Typed, asynchronous wrappers for the few API calls kvha makes.

Each function is idempotent where the API allows (404 on delete is success), because after a
crash the next leader repeats the last step it cannot prove was done. RBAC in the Helm chart is
derived from exactly these calls: add a call here, add its rule there.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kvha.constants import (
    GROUP,
    OUT_OF_SERVICE_TAINT_EFFECT,
    OUT_OF_SERVICE_TAINT_KEY,
    OUT_OF_SERVICE_TAINT_VALUE,
    VERSION,
)

__all__ = ["Kube", "load_config", "plural_of"]

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")


def load_config() -> client.ApiClient:
    """In-cluster credentials when running as a pod, else the current kubeconfig."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    configuration = client.Configuration.get_default_copy()
    # Failover of many VMs issues many small calls at once; the default pool of 4 serialises them.
    configuration.connection_pool_maxsize = 32
    return client.ApiClient(configuration)


def _threaded(func: Callable[P, T]) -> Callable[P, Coroutine[Any, Any, T]]:
    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(func, *args, **kwargs)

    return wrapper


class Kube:
    """The API calls kvha makes, grouped so tests and RBAC checks can enumerate them."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.coordination = client.CoordinationV1Api(api_client)

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
            body = self._as_dict(self.core.read_node(node))
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
                self.core.patch_node(node, patch)
            except ApiException as exc:
                if exc.status == 409:
                    continue  # someone else changed the node; read again
                raise
            return True
        raise RuntimeError(f"could not update taints of node {node}: too many conflicts")

    # --- the stuck instance -----------------------------------------------------------------------
    @_threaded
    def force_delete_pod(self, namespace: str, name: str) -> bool:
        """Delete with grace period 0: the kubelet of a fenced node will never confirm it."""
        try:
            self.core.delete_namespaced_pod(
                name, namespace, grace_period_seconds=0, body=client.V1DeleteOptions(grace_period_seconds=0)
            )
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
            result = self._as_dict(self.custom.create_cluster_custom_object(GROUP, VERSION, "nodefailovers", body))
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise
        return result

    @_threaded
    def patch_status(self, plural: str, name: str, status: dict[str, Any]) -> None:
        self.custom.patch_cluster_custom_object_status(GROUP, VERSION, plural, name, {"status": status})

    # --- medik8s-style remediation objects ---------------------------------------------------
    @_threaded
    def get_object(self, *, api_version: str, plural: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        group, version = api_version.split("/")
        try:
            if namespace:
                obj = self.custom.get_namespaced_custom_object(group, version, namespace, plural, name)
            else:
                obj = self.custom.get_cluster_custom_object(group, version, plural, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return self._as_dict(obj)

    @_threaded
    def create_object(self, *, api_version: str, plural: str, body: dict[str, Any], namespace: str) -> None:
        group, version = api_version.split("/")
        try:
            self.custom.create_namespaced_custom_object(group, version, namespace, plural, body)
        except ApiException as exc:
            if exc.status != 409:
                raise

    @_threaded
    def delete_object(self, *, api_version: str, plural: str, name: str, namespace: str) -> None:
        group, version = api_version.split("/")
        try:
            self.custom.delete_namespaced_custom_object(group, version, namespace, plural, name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def plural_of(kind: str) -> str:
    """Lower-case plural as controller-gen names CRDs (SelfNodeRemediation → selfnoderemediations)."""
    lower = kind.lower()
    return lower + ("es" if lower.endswith(("s", "x", "ch", "sh")) else "s")


async def set_node_annotation(kube: Kube, node: str, key: str, value: str | None) -> None:
    """Set or (with None) remove one annotation on a Node with a merge patch."""
    await asyncio.to_thread(kube.core.patch_node, node, {"metadata": {"annotations": {key: value}}})
