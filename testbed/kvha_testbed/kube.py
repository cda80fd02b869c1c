"""A small JSON client for the testbed's own traffic (plane setup, kwok nodes, the KubeVirt simulator).

The simulator keeps thousands of pods, VMIs and VMs in step, and the `kubernetes` package's typed
models cost milliseconds per object to (de)serialise. The testbed therefore talks plain JSON over
one `urllib3` pool sized for its worker threads (the `kubernetes` client's default pool is
cpu_count * 5 connections, which two busy informers and eight workers exhaust). Tests and the
operator keep using the official client; this module is the testbed's internal plumbing only.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
import yaml

Obj = dict[str, Any]

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
FIELD_MANAGER = "kvha-testbed"


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API; `path()` builds collection, object and subresource URLs."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name)}"
            if subresource:
                base += f"/{subresource}"
        return base


PODS = Resource("", "v1", "pods")
NODES = Resource("", "v1", "nodes", namespaced=False)
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts")
EVENTS = Resource("", "v1", "events")
LEASES = Resource("coordination.k8s.io", "v1", "leases")
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
VMS = Resource("kubevirt.io", "v1", "virtualmachines")
VMIS = Resource("kubevirt.io", "v1", "virtualmachineinstances")
SELF_NODE_REMEDIATIONS = Resource("self-node-remediation.medik8s.io", "v1alpha1", "selfnoderemediations")
FENCE_AGENTS_REMEDIATIONS = Resource("fence-agents-remediation.medik8s.io", "v1alpha1", "fenceagentsremediations")


@dataclass(frozen=True)
class Credentials:
    """How to reach and authenticate to the API server: a client certificate or a bearer token."""

    server: str
    ca: Path
    cert: Path | None = None
    key: Path | None = None
    token: str | None = None

    def write_kubeconfig(self, path: Path, *, user: str, cluster: str = "kvha-testbed") -> Path:
        """Write a kubeconfig that any client (kubectl, kopf, the kubernetes package) can use."""
        user_entry: dict[str, str] = {}
        if self.cert and self.key:
            user_entry = {"client-certificate": str(self.cert), "client-key": str(self.key)}
        if self.token:
            user_entry["token"] = self.token
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": cluster, "cluster": {"server": self.server, "certificate-authority": str(self.ca)}}],
            "users": [{"name": user, "user": user_entry}],
            "contexts": [{"name": f"{user}@{cluster}", "context": {"cluster": cluster, "user": user}}],
            "current-context": f"{user}@{cluster}",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path


class KubeError(Exception):
    """A non-2xx answer, with the API's own Status message (what tests usually assert on)."""

    def __init__(self, *, method: str, path: str, status: int, body: bytes) -> None:
        self.status = status
        self.method = method
        self.path = path
        try:
            self.body: Obj = json.loads(body) if body else {}
        except ValueError:
            self.body = {"message": body.decode(errors="replace")}
        self.reason = str(self.body.get("reason", ""))
        self.message = str(self.body.get("message", body[:500].decode(errors="replace")))
        super().__init__(f"{method} {path}: {status} {self.reason}: {self.message}")

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def namespace_terminating(self) -> bool:
        """Creating into a namespace that is being deleted (expected while tests clean up)."""
        causes = (self.body.get("details") or {}).get("causes") or []
        return self.status == 403 and any(c.get("reason") == "NamespaceTerminating" for c in causes)


class WatchExpiredError(Exception):
    """The resourceVersion we watched from is gone (410); the caller must list again."""


class WatchStream:
    """An open watch; iterate for (type, object) events, `close()` from any thread to stop."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self._response = response

    def __iter__(self) -> Iterator[tuple[str, Obj]]:
        buffer = b""
        for chunk in self._response.stream(amt=None, decode_content=False):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type", ""), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchExpiredError(obj.get("message", "resource version too old"))
                    raise KubeError(
                        method="WATCH", path="", status=int(obj.get("code", 500)), body=json.dumps(obj).encode()
                    )
                yield kind, obj

    def close(self) -> None:
        """Unblock a reader in another thread and drop the connection (never back to the pool:
        it may still carry unread events). Idempotent."""
        with contextlib.suppress(AttributeError, OSError, ValueError, RuntimeError):
            self._response.shutdown()
        with contextlib.suppress(OSError):
            self._response.close()


class KubeClient:
    """Synchronous JSON client; thread-safe (urllib3 pools are), one instance per credential."""

    def __init__(self, credentials: Credentials, *, pool_size: int = 32, timeout: float = 30.0) -> None:
        self.credentials = credentials
        self.timeout = timeout
        context = ssl.create_default_context(cafile=str(credentials.ca))
        if credentials.cert and credentials.key:
            context.load_cert_chain(str(credentials.cert), str(credentials.key))
        self._headers = {"Accept": "application/json", "User-Agent": "kvha-testbed"}
        if credentials.token:
            self._headers["Authorization"] = f"Bearer {credentials.token}"
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=pool_size,
            block=False,
            ssl_context=context,
            retries=urllib3.Retry(total=3, connect=3, read=0, status=0, backoff_factor=0.2, allowed_methods=None),
        )

    def close(self) -> None:
        self._pool.clear()

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, object] | None = None,
        body: object = None,
        content_type: str = "application/json",
        timeout: float | None = None,
        retry_connect: bool = True,
    ) -> Obj:
        url = self.credentials.server + path
        if query:
            url += "?" + urlencode(
                {k: str(v).lower() if isinstance(v, bool) else v for k, v in query.items() if v is not None}
            )
        headers = dict(self._headers)
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        # retries=None means the pool's policy; False means "fail at once" (startup probes).
        response = self._pool.request(
            method,
            url,
            body=data,
            headers=headers,
            timeout=timeout or self.timeout,
            preload_content=True,
            retries=None if retry_connect else False,
        )
        if not 200 <= response.status < 300:
            raise KubeError(method=method, path=path, status=response.status, body=response.data)
        if not response.data:
            return {}
        if not response.headers.get("Content-Type", "").startswith("application/json"):
            return {"text": response.data.decode(errors="replace")}  # /readyz and friends answer "ok"
        payload: Obj = json.loads(response.data)
        return payload

    def get(self, path: str, **query: object) -> Obj:
        return self.request("GET", path, query=query)

    def get_or_none(self, path: str) -> Obj | None:
        try:
            return self.get(path)
        except KubeError as error:
            if error.not_found:
                return None
            raise

    def create(self, path: str, body: Obj) -> Obj:
        return self.request("POST", path, body=body)

    def create_or_get(self, path: str, body: Obj) -> Obj:
        try:
            return self.create(path, body)
        except KubeError as error:
            if not error.conflict:
                raise
            return self.get(f"{path}/{quote(body['metadata']['name'])}")

    def replace(self, path: str, body: Obj) -> Obj:
        """PUT the whole object (optimistic concurrency through its metadata.resourceVersion)."""
        return self.request("PUT", path, body=body)

    def patch(self, path: str, body: object, *, content_type: str = MERGE) -> Obj:
        return self.request("PATCH", path, body=body, content_type=content_type)

    def apply(self, path: str, body: Obj, *, field_manager: str = FIELD_MANAGER) -> Obj:
        """Server-side apply (JSON is valid YAML, so the body goes as JSON)."""
        return self.request(
            "PATCH", path, body=body, content_type=APPLY, query={"fieldManager": field_manager, "force": True}
        )

    def delete(
        self,
        path: str,
        *,
        grace_seconds: int | None = None,
        propagation: str | None = None,
        uid: str | None = None,
        missing_ok: bool = True,
    ) -> Obj:
        options: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_seconds is not None:
            options["gracePeriodSeconds"] = grace_seconds
        if propagation:
            options["propagationPolicy"] = propagation
        if uid:
            options["preconditions"] = {"uid": uid}
        try:
            return self.request("DELETE", path, body=options)
        except KubeError as error:
            if missing_ok and error.not_found:
                return {}
            raise

    def list(
        self, path: str, *, label_selector: str | None = None, field_selector: str | None = None, limit: int = 500
    ) -> tuple[list[Obj], str]:
        """All items (following continue tokens) and the list's resourceVersion."""
        items: list[Obj] = []
        token: str | None = None
        while True:
            page = self.get(
                path, labelSelector=label_selector, fieldSelector=field_selector, limit=limit, **{"continue": token}
            )
            items.extend(page.get("items") or [])
            token = page.get("metadata", {}).get("continue")
            if not token:
                return items, str(page.get("metadata", {}).get("resourceVersion", ""))

    def watch(
        self,
        path: str,
        *,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> WatchStream:
        query = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout_seconds,
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
        }
        url = self.credentials.server + path + "?" + urlencode({k: v for k, v in query.items() if v})
        response = self._pool.request(
            "GET",
            url,
            headers=dict(self._headers),
            preload_content=False,
            timeout=urllib3.Timeout(connect=10, read=timeout_seconds + 30),
        )
        if response.status != 200:
            data = response.read()
            response.release_conn()
            raise KubeError(method="WATCH", path=path, status=response.status, body=data)
        return WatchStream(response)
