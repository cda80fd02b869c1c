"""List-watch caches and a de-duplicating work queue, the client-go pattern in a few threads.

Thousands of simulated VMs must not mean thousands of polls: each kind is listed once and then
watched; handlers read the cache and enqueue object keys; workers process a key at most once at a
time and coalesce bursts of events for it. Delayed re-checks (heartbeat staleness, fence delays) go
through `add_after` on the same queue.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from kvha_testbed.kube import KubeClient, KubeError, Obj, Resource, WatchExpiredError, WatchStream

log = logging.getLogger("kvha_testbed.sim")

Key = tuple[str, ...]
Indexer = Callable[[Obj], list[str]]
Handler = Callable[[str, Obj | None, Obj | None], None]


def object_key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


class WorkQueue:
    """client-go's workqueue semantics: dedup while queued, never two workers on one key."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[Hashable] = deque()
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._timers: list[tuple[float, int, Hashable]] = []
        self._seq = 0
        self._shutdown = False
        self._timer_thread = threading.Thread(target=self._run_timers, name="sim-queue-timers", daemon=True)
        self._timer_thread.start()

    def add(self, key: Hashable) -> None:
        with self._cond:
            if self._shutdown or key in self._dirty:
                return
            self._dirty.add(key)
            if key not in self._processing:
                self._queue.append(key)
                self._cond.notify_all()

    def add_after(self, key: Hashable, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            self._seq += 1
            heapq.heappush(self._timers, (time.monotonic() + delay, self._seq, key))
            self._cond.notify_all()

    def get(self) -> Hashable | None:
        """Block for the next key; None once shut down."""
        with self._cond:
            while not self._queue and not self._shutdown:
                self._cond.wait()
            if self._shutdown:
                return None
            key = self._queue.popleft()
            self._processing.add(key)
            self._dirty.discard(key)
            return key

    def done(self, key: Hashable) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify_all()

    def depth(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._processing)

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def _run_timers(self) -> None:
        while True:
            due: list[Hashable] = []
            with self._cond:
                if self._shutdown:
                    return
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    due.append(heapq.heappop(self._timers)[2])
                if not due:
                    timeout = self._timers[0][0] - now if self._timers else None
                    self._cond.wait(timeout)
            for key in due:
                self.add(key)


class Informer:
    """A list+watch cache of one resource, with secondary indexes and a change callback.

    Cached objects are shared: callers must treat them as read-only.
    """

    def __init__(
        self,
        client: KubeClient,
        resource: Resource,
        *,
        on_change: Handler,
        label_selector: str | None = None,
        indexers: dict[str, Indexer] | None = None,
        name: str | None = None,
    ) -> None:
        self.client = client
        self.resource = resource
        self.label_selector = label_selector
        self.name = name or resource.plural
        self._on_change = on_change
        self._indexers = indexers or {}
        self._lock = threading.RLock()
        self._store: dict[tuple[str, str], Obj] = {}
        self._index: dict[str, dict[str, set[tuple[str, str]]]] = {n: {} for n in self._indexers}
        self._synced = threading.Event()
        self._stopping = threading.Event()
        self._stream: WatchStream | None = None
        self._thread = threading.Thread(target=self._run, name=f"informer-{self.name}", daemon=True)

    # ----------------------------------------------------------------------------- reading

    def get(self, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._store.get((namespace, name))

    def items(self) -> list[Obj]:
        with self._lock:
            return list(self._store.values())

    def by_index(self, index: str, value: str) -> list[Obj]:
        with self._lock:
            return [self._store[k] for k in self._index[index].get(value, ())]

    def __len__(self) -> int:
        with self._lock:
            return len(self._store)

    # ----------------------------------------------------------------------------- lifecycle

    def start(self) -> Informer:
        self._thread.start()
        return self

    def wait_synced(self, timeout: float = 60.0) -> None:
        if not self._synced.wait(timeout):
            raise TimeoutError(f"informer {self.name} did not complete its initial list in {timeout:.0f}s")

    def stop(self) -> None:
        self._stopping.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.2
        resource_version = ""
        path = self.resource.path()
        while not self._stopping.is_set():
            try:
                if not resource_version:
                    items, resource_version = self.client.list(path, label_selector=self.label_selector)
                    self._replace(items)
                    self._synced.set()
                self._stream = self.client.watch(
                    path, resource_version=resource_version, label_selector=self.label_selector
                )
                for kind, obj in self._stream:
                    if self._stopping.is_set():
                        break
                    resource_version = obj.get("metadata", {}).get("resourceVersion", resource_version)
                    if kind != "BOOKMARK":
                        self._apply(kind, obj)
                backoff = 0.2
            except WatchExpiredError:
                resource_version = ""  # relist
            except Exception as error:  # network, API or decoding trouble: back off and list again
                if self._stopping.is_set():
                    break
                log.debug("informer %s: %s; retrying in %.1fs", self.name, error, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                if isinstance(error, KubeError) and error.status == 410:
                    resource_version = ""
            finally:
                if self._stream is not None:
                    self._stream.close()
                    self._stream = None

    # ----------------------------------------------------------------------------- cache updates

    def _replace(self, items: list[Obj]) -> None:
        fresh = {object_key(obj): obj for obj in items}
        events: list[tuple[str, Obj | None, Obj | None]] = []
        with self._lock:
            for key, gone in list(self._store.items()):
                if key not in fresh:
                    self._remove(key)
                    events.append(("DELETED", gone, None))
            for key, obj in fresh.items():
                previous = self._store.get(key)
                self._put(key, obj)
                events.append(("ADDED" if previous is None else "MODIFIED", previous, obj))
        for kind, old, new in events:
            self._notify(kind, old, new)

    def _apply(self, kind: str, obj: Obj) -> None:
        key = object_key(obj)
        with self._lock:
            old = self._store.get(key)
            if kind == "DELETED":
                self._remove(key)
            elif old is not None and _version(old) > _version(obj):
                return  # `observe` already cached a newer version from one of our own writes
            else:
                self._put(key, obj)
        self._notify(kind, old, None if kind == "DELETED" else obj)

    def observe(self, obj: Obj) -> None:
        """Write-through: cache the object a write of ours returned, unless the cache is newer.

        Without it the next sync, triggered before the watch event arrives, compares against the
        stale copy and writes again - a conflict per status change at scale.
        """
        if not obj.get("metadata"):
            return
        key = object_key(obj)
        with self._lock:
            old = self._store.get(key)
            if old is None or _version(old) < _version(obj):
                self._put(key, obj)

    def _put(self, key: tuple[str, str], obj: Obj) -> None:
        if key in self._store:
            self._remove(key)
        self._store[key] = obj
        for index, fn in self._indexers.items():
            for value in fn(obj):
                self._index[index].setdefault(value, set()).add(key)

    def _remove(self, key: tuple[str, str]) -> None:
        obj = self._store.pop(key, None)
        if obj is None:
            return
        for index, fn in self._indexers.items():
            for value in fn(obj):
                keys = self._index[index].get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._index[index][value]

    def _notify(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        try:
            self._on_change(kind, old, new)
        except Exception:
            log.exception("informer %s: change handler failed", self.name)


def meta(obj: Obj) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _version(obj: Obj) -> int:
    """resourceVersion as a number: opaque to clients in general, an etcd revision in practice."""
    try:
        return int(meta(obj).get("resourceVersion") or 0)
    except ValueError:
        return 0
