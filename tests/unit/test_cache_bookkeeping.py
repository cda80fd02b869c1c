"""The caches' bookkeeping (no API): what a watch event or a relist does to the indices."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from kvha.k8s.informer import ApiSession, Cache, ExpiredError, Resource

PODS = Resource("", "v1", "pods")


def _pod(name: str, node: str | None, *, uid: str | None = None, launcher_of: str | None = None) -> dict[str, Any]:
    labels = {"kubevirt.io": "virt-launcher", "kubevirt.io/created-by": launcher_of} if launcher_of else {}
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": uid or f"uid-{name}", "labels": labels},
        "spec": {"nodeName": node} if node else {},
    }


def _cache() -> Cache:
    cache = Cache(PODS)
    cache.add("by_node", lambda obj: {obj["spec"]["nodeName"]: obj["metadata"]["name"]} if obj["spec"] else None)
    cache.add(
        "launchers",
        lambda obj: (
            {obj["metadata"]["labels"]["kubevirt.io/created-by"]: obj["metadata"]["name"]}
            if obj["metadata"]["labels"]
            else None
        ),
    )
    return cache


def _contents(cache: Cache, index: str) -> dict[Any, list[str]]:
    return {key: sorted(values) for key, values in cache.indices[index].items()}


def test_watch_events_add_move_and_remove_entries_in_every_index_of_the_resource() -> None:
    cache = _cache()
    cache.apply("ADDED", _pod("a", "n1", launcher_of="vmi-a"))
    cache.apply("ADDED", _pod("b", "n1"))
    assert _contents(cache, "by_node") == {"n1": ["a", "b"]}
    assert _contents(cache, "launchers") == {"vmi-a": ["a"]}

    cache.apply("MODIFIED", _pod("a", "n2", launcher_of="vmi-a"))
    assert _contents(cache, "by_node") == {"n1": ["b"], "n2": ["a"]}, "a moved value leaves its old key"

    cache.apply("DELETED", _pod("a", "n2", launcher_of="vmi-a"))
    assert _contents(cache, "by_node") == {"n1": ["b"]}
    assert _contents(cache, "launchers") == {}, "an emptied key disappears"
    assert len(cache) == 1


def test_a_relist_drops_the_objects_deleted_while_kvha_was_not_watching() -> None:
    """After 410 Gone the watch cannot tell of deletions in the gap: only replacing the cache with
    the new list removes them (a stale launcher or NodeFailover would otherwise stay forever)."""
    cache = _cache()
    for pod in (_pod("a", "n1", launcher_of="vmi-a"), _pod("b", "n1"), _pod("c", "n2")):
        cache.apply("ADDED", pod)

    gone = cache.replace([_pod("b", "n1"), _pod("d", "n3")])

    assert gone == 2
    assert _contents(cache, "by_node") == {"n1": ["b"], "n3": ["d"]}
    assert _contents(cache, "launchers") == {}


def test_a_recreated_object_of_the_same_name_is_a_new_entry() -> None:
    cache = _cache()
    cache.apply("ADDED", _pod("a", "n1", uid="old"))
    cache.apply("ADDED", _pod("a", "n2", uid="new"))
    cache.apply("DELETED", _pod("a", "n1", uid="old"))  # the old one's deletion arrives late
    assert _contents(cache, "by_node") == {"n2": ["a"]}


def test_an_object_an_index_cannot_read_is_left_out_of_that_index_only() -> None:
    cache = _cache()
    odd = {"metadata": {"name": "odd", "uid": "u", "labels": {"kubevirt.io/created-by": "vmi-x"}}}  # no spec
    cache.apply("ADDED", odd)
    cache.apply("ADDED", _pod("b", "n1"))
    assert _contents(cache, "by_node") == {"n1": ["b"]}
    assert _contents(cache, "launchers") == {"vmi-x": ["odd"]}


def test_resource_paths_are_the_api_servers() -> None:
    assert PODS.path() == "/api/v1/pods"
    assert Resource("coordination.k8s.io", "v1", "leases", "kube-node-lease").path() == (
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    )


class _Session:
    """Serves one list, then a watch stream (the events given), and records what was asked."""

    def __init__(self, items: list[dict[str, Any]], stream: list[dict[str, Any]]) -> None:
        self.items, self.stream, self.watched_from = items, stream, []

    async def get_json(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        return {"items": self.items, "metadata": {"resourceVersion": "10"}}

    async def stream_json(self, path: str, params: Mapping[str, str]) -> AsyncIterator[dict[str, Any]]:
        self.watched_from.append(params["resourceVersion"])
        for event in self.stream:
            yield event


def _as_session(session: _Session) -> ApiSession:
    return session  # type: ignore[return-value]  # the two methods the cache calls


def test_an_expired_watch_error_event_ends_the_watch_for_a_relist() -> None:
    """The API server reports a too-old resourceVersion as an ERROR event carrying a 410 Status."""
    cache = _cache()
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}}
    session = _Session([], [{"type": "ADDED", "object": _pod("a", "n1")}, gone])
    with pytest.raises(ExpiredError):
        asyncio.run(cache._watch(_as_session(session), "10"))
    assert _contents(cache, "by_node") == {"n1": ["a"]}, "events before the error still count"


def test_bookmarks_move_the_resource_version_the_watch_resumes_from() -> None:
    cache = _cache()
    bookmark = {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "42"}}}
    session = _Session(
        [],
        [
            {
                "type": "ADDED",
                "object": {**_pod("a", "n1"), "metadata": {**_pod("a", "n1")["metadata"], "resourceVersion": "11"}},
            },
            bookmark,
        ],
    )
    assert asyncio.run(cache._watch(_as_session(session), "10")) == "42"
    assert len(cache) == 1, "a bookmark is no object"


def test_after_410_the_loop_relists_and_replaces_the_cache() -> None:
    cache = _cache()
    for pod in (_pod("a", "n1"), _pod("b", "n2")):
        cache.apply("ADDED", pod)
    gone = {"type": "ERROR", "object": {"code": 410}}
    session = _Session([_pod("b", "n2")], [gone])

    async def two_rounds() -> None:
        task = asyncio.create_task(cache.run(_as_session(session)))
        while len(session.watched_from) < 2:  # noqa: ASYNC110 - listed, watched, expired, listed again, watched
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(two_rounds())
    assert _contents(cache, "by_node") == {"n2": ["b"]}
    assert session.watched_from[:2] == ["10", "10"], "each watch starts from its list's version"


class _SilentSession(_Session):
    """A watch that delivers one event, then goes silent until the read timeout."""

    async def stream_json(self, path: str, params: Mapping[str, str]) -> AsyncIterator[dict[str, Any]]:
        async for event in super().stream_json(path, params):
            yield event
        raise TimeoutError


def test_a_silent_watch_reconnects_from_where_it_stopped_without_a_relist() -> None:
    pod = _pod("a", "n1")
    pod["metadata"]["resourceVersion"] = "12"
    session = _SilentSession([], [{"type": "ADDED", "object": pod}])
    assert asyncio.run(_cache()._watch(_as_session(session), "10")) == "12"


@pytest.mark.parametrize("stored_as", ["BearerToken", "authorization"])
def test_the_caches_send_the_token_the_kubernetes_client_loaded(stored_as: str) -> None:
    """A token from a kubeconfig or a pod's service account must reach the caches' requests too
    (without it every list is refused as system:anonymous)."""
    from kubernetes import client  # noqa: PLC0415 - only this test needs the client

    configuration = client.Configuration()
    configuration.host = "https://api.example:6443"
    configuration.api_key = {stored_as: "Bearer abc"}

    async def headers() -> dict[str, str]:
        session = ApiSession(configuration, list_timeout=1)
        try:
            return session._headers()
        finally:
            await session.close()

    assert asyncio.run(headers())["Authorization"] == "Bearer abc"
