"""kvha's own list-and-watch caches of the objects it reads, on every replica, leader or not.

kvha used to keep these in kopf's indices. Measured at 100 nodes and 2,000 VMs, kopf's per-event
machinery (each event goes through its whole handler pipeline) made the initial lists cost about
210 s of one core, and its indices exist only while kopf runs, that is only on the leader: a
standby that took over started with minutes of listing, during which Lease renewals arrived late
enough to make healthy nodes look silent. The informers here:

* start with the process, before leader election, so a standby's caches are warm and a takeover
  acts on them at once (they only read: no replica writes before it leads);
* list in pages and watch with bookmarks, reconnecting from the last resourceVersion;
* after a watch expires (410 Gone) relist and *replace* the cache, so objects deleted while kvha
  was not watching leave it (an incremental watch never tells of them);
* keep per object only the small views of `kvha.models.views` that the index functions return.

kopf still runs the handlers (on the leader only) and watches the two kinds it drives: HAPolicy
and NodeFailover.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import json
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

import aiohttp
from kubernetes import client

from kvha import metrics

__all__ = ["CACHES", "Cache", "Caches", "Index", "Resource", "index", "open_session"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
K = TypeVar("K")
V = TypeVar("V")
IndexFunction = Callable[[Obj], Mapping[Any, Any] | None]

PAGE_SIZE = 500
WATCH_SECONDS = 290
# A watch that delivers nothing, not even a bookmark, for this long is reconnected (from its last
# resourceVersion, so nothing is relisted): a half-open connection must not freeze the cache. The
# API server sends a bookmark about once a minute on a quiet watch, so less would reconnect the
# watches of quiet resources (namespaces, claims) all the time.
SILENT_WATCH_SECONDS = 90.0
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)


class ExpiredError(Exception):
    """The watch's resourceVersion is too old (410 Gone): only a new list can continue."""


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    namespace: str | None = None

    def path(self) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        scope = f"/namespaces/{self.namespace}" if self.namespace else ""
        return f"{base}{scope}/{self.plural}"

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.plural}.{self.group or 'core'}{where}"


class Index(Mapping[K, Collection[V]], Generic[K, V]):
    """Key → the values the cached objects put under it (usually one), like a kopf index."""

    def __init__(self) -> None:
        self._data: dict[K, dict[str, V]] = {}

    def __getitem__(self, key: K) -> Collection[V]:
        return self._data[key].values()

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def _put(self, key: K, owner: str, value: V) -> None:
        self._data.setdefault(key, {})[owner] = value

    def _drop(self, key: K, owner: str) -> None:
        values = self._data.get(key)
        if values is None:
            return
        values.pop(owner, None)
        if not values:
            del self._data[key]


@dataclass
class Cache:
    """One resource's objects, as the entries its index functions made of them.

    `apply` and `replace` are plain data operations (no I/O), so the relist rule is unit-tested;
    `run` is the list-and-watch loop that feeds them.
    """

    resource: Resource
    functions: dict[str, IndexFunction] = field(default_factory=dict)
    indices: dict[str, Index[Any, Any]] = field(default_factory=dict)
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    watchers: list[Callable[[Obj | None], None]] = field(default_factory=list)
    """Called with the object of each watch event, and with None once a list (the first, or a
    relist after a 410) has replaced the cache: lag measurements, and what wakes the handlers that
    read this resource (`kvha.handlers.rhythm`)."""
    _entries: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)  # object → (index, key)

    def add(self, name: str, function: IndexFunction) -> None:
        self.functions[name] = function
        self.indices[name] = Index()

    def apply(self, event_type: str, obj: Obj) -> None:
        owner = _identity(obj)
        self._forget(owner)
        if event_type != "DELETED":
            self._remember(owner, obj)

    def replace(self, objs: Iterable[Obj]) -> int:
        """The cache becomes exactly `objs`; returns how many cached objects were not in them."""
        seen: set[str] = set()
        self.take_page(objs, seen)
        return self.drop_unseen(seen)

    def take_page(self, objs: Iterable[Obj], seen: set[str]) -> None:
        """One page of a list into the cache, its objects added to `seen`: a list is taken in page
        by page, so that at most one page of whole objects is held at a time (a list of 2,000 pods
        parsed at once made the operator's memory peak, and Python keeps what it once used)."""
        for obj in objs:
            owner = _identity(obj)
            seen.add(owner)
            self._forget(owner)
            self._remember(owner, obj)

    def drop_unseen(self, seen: set[str]) -> int:
        """After the last page: forget the objects the list did not have (deleted while kvha was
        not watching; an incremental watch never tells of them)."""
        gone = [owner for owner in self._entries if owner not in seen]
        for owner in gone:
            self._forget(owner)
        return len(gone)

    def __len__(self) -> int:
        return len(self._entries)

    def _remember(self, owner: str, obj: Obj) -> None:
        made: list[tuple[str, Any]] = []
        for name, function in self.functions.items():
            try:
                entries = function(obj)
            except Exception:  # one malformed object must not stop the cache
                log.exception("index %s could not read %s %s", name, self.resource, owner)
                continue
            for key, value in (entries or {}).items():
                self.indices[name]._put(key, owner, value)
                made.append((name, key))
        self._entries[owner] = made

    def _forget(self, owner: str) -> None:
        for name, key in self._entries.pop(owner, ()):
            self.indices[name]._drop(key, owner)

    async def run(self, session: ApiSession) -> None:
        """List, then watch from the list's resourceVersion; relist only when the watch expired."""
        attempt = 0
        resource_version: str | None = None
        while True:
            try:
                if resource_version is None:
                    resource_version = await self._list(session)
                    self.synced.set()
                    for watcher in self.watchers:
                        watcher(None)
                resource_version = await self._watch(session, resource_version)
                attempt = 0
            except ExpiredError:
                log.info("watch of %s expired (410 Gone): relisting", self.resource)
                metrics.observe_relist(str(self.resource))
                resource_version = None
                # A list that expires again at once must not become a loop of lists.
                await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)] if attempt else 0)
                attempt += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the API server restarting, a timeout: retry, then relist if needed
                delay = RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)]
                attempt += 1
                log.warning("watching %s failed (%s); retrying in %ss", self.resource, exc or type(exc).__name__, delay)
                await asyncio.sleep(delay)

    async def _list(self, session: ApiSession) -> str:
        started = time.monotonic()
        seen: set[str] = set()
        token: str | None = None
        while True:
            params = {"limit": str(PAGE_SIZE)}
            if token:
                params["continue"] = token
            page = await session.get_json(self.resource.path(), params)
            self.take_page(page.get("items") or (), seen)
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            del page
            if not token:
                break
        gone = self.drop_unseen(seen)
        log.info(
            "listed %d %s in %.1fs%s",
            len(seen),
            self.resource,
            time.monotonic() - started,
            f"; {gone} deleted while not watching" if gone else "",
        )
        return str(meta.get("resourceVersion", ""))

    async def _watch(self, session: ApiSession, resource_version: str) -> str:
        params = {
            "watch": "1",
            "allowWatchBookmarks": "true",
            "resourceVersion": resource_version,
            # Jittered so that the caches do not all reconnect in the same second.
            "timeoutSeconds": str(WATCH_SECONDS + random.randint(0, 20)),  # noqa: S311 - not cryptographic
        }
        resource = str(self.resource)
        try:
            async for event in session.stream_json(self.resource.path(), params):
                resource_version = self._take(event, resource_version, resource)
        except TimeoutError:  # silent for SILENT_WATCH_SECONDS: reconnect from where it stopped
            log.debug("watch of %s silent for %ss: reconnecting", self.resource, SILENT_WATCH_SECONDS)
        return resource_version

    def _take(self, event: Obj, resource_version: str, resource: str) -> str:
        """One watch event into the cache; the resourceVersion to resume from after it."""
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise ExpiredError
            raise RuntimeError(f"watch error: {obj.get('message') or obj}")
        new_version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind != "BOOKMARK":
            self.apply(str(kind), obj)
            metrics.observe_watch_event(resource)
            for watcher in self.watchers:
                watcher(obj)
        if new_version:
            resource_version = str(new_version)
        return resource_version


def _identity(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return str(meta.get("uid") or f"{meta.get('namespace', '')}/{meta.get('name', '')}")


class ApiSession:
    """The two requests an informer makes, over aiohttp, with the kubernetes client's credentials."""

    def __init__(self, configuration: client.Configuration, *, list_timeout: float) -> None:
        self.configuration = configuration
        self.list_timeout = list_timeout
        self.base = str(configuration.host).rstrip("/")
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=_ssl_context(configuration)))

    def _headers(self) -> dict[str, str]:
        # As the kubernetes client authenticates: kubeconfig and in-cluster tokens are stored as
        # "BearerToken" (older clients: "authorization"), already prefixed with "Bearer"; the
        # lookup runs the refresh hook, so rotated in-cluster tokens are re-read from disk.
        token = self.configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = str(token)
        return headers

    @contextlib.asynccontextmanager
    async def _get(
        self, path: str, params: Mapping[str, str], limits: aiohttp.ClientTimeout
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One GET, its 410 Gone raised as `ExpiredError` and any other error status raised."""
        async with self._session.get(
            f"{self.base}{path}?{urlencode(params)}", headers=self._headers(), timeout=limits
        ) as response:
            if response.status == 410:
                raise ExpiredError
            response.raise_for_status()
            yield response

    async def get_json(self, path: str, params: Mapping[str, str]) -> Obj:
        async with self._get(path, params, aiohttp.ClientTimeout(total=self.list_timeout)) as response:
            body: Obj = await response.json()
            return body

    async def stream_json(self, path: str, params: Mapping[str, str]) -> Any:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.list_timeout, sock_read=SILENT_WATCH_SECONDS)
        async with self._get(path, params, timeout) as response:
            pending = b""
            # Split lines ourselves: aiohttp's line reader refuses lines over its buffer size,
            # and a Node with many images is a long line.
            async for chunk in response.content.iter_any():
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)

    async def close(self) -> None:
        await self._session.close()


def _ssl_context(configuration: client.Configuration) -> ssl.SSLContext | bool:
    if not str(configuration.host).startswith("https"):
        return False
    if not configuration.verify_ssl:
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


def open_session(api_client: client.ApiClient, *, list_timeout: float) -> ApiSession:
    return ApiSession(api_client.configuration, list_timeout=list_timeout)


class Caches:
    """Every cache kvha keeps, registered by the `index` decorator, looked up by index name."""

    def __init__(self) -> None:
        self.by_resource: dict[Resource, Cache] = {}

    def register(self, resource: Resource, name: str, function: IndexFunction) -> None:
        self.cache(resource).add(name, function)

    def cache(self, resource: Resource) -> Cache:
        return self.by_resource.setdefault(resource, Cache(resource))

    @property
    def indices(self) -> dict[str, Index[Any, Any]]:
        return {name: ix for cache in self.by_resource.values() for name, ix in cache.indices.items()}

    @property
    def synced(self) -> bool:
        return all(cache.synced.is_set() for cache in self.by_resource.values())

    async def run(self, session: ApiSession, *, on_synced: Callable[[], None]) -> None:
        """Run every cache until cancelled; `on_synced` once all of them have their first list."""
        tasks = [asyncio.create_task(cache.run(session), name=f"cache {r}") for r, cache in self.by_resource.items()]
        try:
            await asyncio.gather(*(cache.synced.wait() for cache in self.by_resource.values()))
            on_synced()
            _return_freed_memory()
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)


def _return_freed_memory() -> None:
    """Hand the initial lists' parsed JSON back to the OS: glibc keeps freed heap pages mapped, so
    without this the resident size stays at the lists' peak for the life of the process."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


CACHES = Caches()


def index(
    group: str, version: str, plural: str, *, namespace: str | None = None
) -> Callable[[Callable[[Obj], Mapping[K, V] | None]], Callable[[Obj], Mapping[K, V] | None]]:
    """Register an index function: object → {key: value} (or None), kept current by a cache of
    that resource (one cache, one watch, per resource however many indices read it)."""

    def register(function: Callable[[Obj], Mapping[K, V] | None]) -> Callable[[Obj], Mapping[K, V] | None]:
        CACHES.register(Resource(group, version, plural, namespace), function.__name__, function)
        return function

    return register
