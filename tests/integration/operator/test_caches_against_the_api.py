"""kvha's caches against the real API server: paged lists, watches, and the relist after a watch
expired that drops what was deleted while kvha was not watching."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from kvha.k8s import informer
from kvha.k8s.informer import Cache, Resource, open_session
from kvha_testbed.testbed import Testbed

pytestmark = pytest.mark.integration


def _configmaps(namespace: str) -> Cache:
    cache = Cache(Resource("", "v1", "configmaps", namespace))
    cache.add("by_name", lambda obj: {obj["metadata"]["name"]: obj.get("data", {}).get("v")})
    return cache


def _names(cache: Cache) -> set[str]:
    return {name for name in cache.indices["by_name"] if name != "kube-root-ca.crt"}


async def _until(check: Any) -> None:
    async with asyncio.timeout(20):  # the cache must catch up with the watch by then
        while not check():  # noqa: ASYNC110 - the cache has no event to wait on; polling is the test's view
            await asyncio.sleep(0.05)


def test_a_cache_lists_in_pages_then_follows_the_watch(
    plane: Testbed, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(informer, "PAGE_SIZE", 3)
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    for i in range(8):
        plane.client.create(path, {"metadata": {"name": f"cm-{i}"}, "data": {"v": "0"}})

    async def scenario() -> None:
        session = open_session(plane.kubernetes_client(), list_timeout=10)
        cache = _configmaps(namespace)
        task = asyncio.create_task(cache.run(session))
        try:
            await asyncio.wait_for(cache.synced.wait(), 20)
            assert _names(cache) == {f"cm-{i}" for i in range(8)}, "every page was taken in"
            await asyncio.to_thread(plane.client.patch, f"{path}/cm-1", {"data": {"v": "1"}})
            await asyncio.to_thread(plane.client.delete, f"{path}/cm-2")
            await _until(lambda: "cm-2" not in _names(cache) and list(cache.indices["by_name"]["cm-1"]) == ["1"])
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await session.close()

    asyncio.run(scenario())


def test_the_relist_after_a_gap_drops_what_was_deleted_meanwhile(plane: Testbed, namespace: str) -> None:
    """What a relist after 410 Gone does, against the real server. (The API server's watch cache
    keeps the recent history of a fresh cluster, so 410 itself cannot be provoked here in test
    time: tests/unit/test_cache_bookkeeping.py feeds both of its forms to the watch loop.)"""
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    for name in ("keep", "gone"):
        plane.client.create(path, {"metadata": {"name": name}})

    async def scenario() -> None:
        session = open_session(plane.kubernetes_client(), list_timeout=10)
        cache = _configmaps(namespace)
        try:
            await cache._list(session)
            assert _names(cache) == {"keep", "gone"}
            # While kvha is not watching (the stream expired, a network cut), "gone" goes …
            await asyncio.to_thread(plane.client.delete, f"{path}/gone")
            # … and the relist leaves it out of the cache, though no watch event ever said so.
            await cache._list(session)
            assert _names(cache) == {"keep"}
        finally:
            await session.close()

    asyncio.run(scenario())
