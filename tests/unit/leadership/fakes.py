"""Stand-ins for the API server in the leadership tests: a clock we move, one Lease, any API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kubernetes.client.exceptions import ApiException

from kvha.models.timeutil import format_micro_time, utcnow


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeLeases:
    """CoordinationV1Api for one Lease, with resourceVersion conflicts like the API server's."""

    def __init__(self, spec: dict[str, Any] | None) -> None:
        self.obj = None if spec is None else {"metadata": {"name": "kvha-leader", "resourceVersion": "1"}, "spec": spec}
        self.timeouts: list[object] = []

    def read_namespaced_lease(self, name: str, namespace: str, **kwargs: Any) -> dict[str, Any]:
        self.timeouts.append(kwargs.get("_request_timeout"))
        if self.obj is None:
            raise ApiException(status=404)
        return {"metadata": dict(self.obj["metadata"]), "spec": dict(self.obj["spec"])}

    def replace_namespaced_lease(self, name: str, namespace: str, body: dict[str, Any], **kwargs: Any) -> None:
        self.timeouts.append(kwargs.get("_request_timeout"))
        assert self.obj is not None
        if body["metadata"]["resourceVersion"] != self.obj["metadata"]["resourceVersion"]:
            raise ApiException(status=409)
        version = str(int(self.obj["metadata"]["resourceVersion"]) + 1)
        self.obj = {"metadata": {"name": name, "resourceVersion": version}, "spec": dict(body["spec"])}

    def renew_as_holder(self, *, holder_clock_behind: float) -> None:
        """The holder renews on time, stamping renewTime from a clock that runs behind ours."""
        assert self.obj is not None
        stamp = format_micro_time(utcnow() - timedelta(seconds=holder_clock_behind))
        self.obj["spec"] = {**self.obj["spec"], "renewTime": stamp}
        self.obj["metadata"]["resourceVersion"] = str(int(self.obj["metadata"]["resourceVersion"]) + 1)


class NoClient:
    """What the API classes need of an ApiClient when their methods are replaced."""

    def sanitize_for_serialization(self, obj: object) -> object:
        return obj


class Recorder:
    """Any API object: records each call and answers like an empty success."""

    def __init__(self, answers: dict[str, Any] | None = None) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.answers = answers or {}

    def __getattr__(self, method: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((method, args, kwargs))
            return self.answers.get(method, {})

        return call


class RawResponse:
    """What the kubernetes client returns for `_preload_content=False`: a body to drain, and a
    connection that must go back to the pool."""

    def __init__(self) -> None:
        self.released = False

    def drain_conn(self) -> None:
        pass

    def release_conn(self) -> None:
        self.released = True
