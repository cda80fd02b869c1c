"""When the policy and incident daemons run their next step: when something they read changed, or
when the decision core's own `recheck_after` says, never on a fixed timer.

The caches (`kvha.k8s.informer`) feed two signals:

* `DETECTION`: HAPolicies, NodeFailovers, a Node whose labels, taints, conditions or capacity
  changed, and any heartbeat (Lease renewal, the Node's status heartbeat) of the nodes some daemon
  watches closely (not Healthy at the last evaluation, or under an incident). A Healthy node's
  heartbeat changes no verdict (it only postpones the moment its silence would count, and the
  verdict's `recheck_after` already covers that moment), so the ~100 renewals a second of a
  1,000-node cluster wake nothing.
* `WORKLOAD`: VirtualMachines, their instances, Pods, PersistentVolumeClaims, Namespaces: what
  placement and admission control read.

A daemon remembers the signals' versions before it reads the indices, and after its step waits
until one of them moved, its recheck is due, or kopf stops it. `pause` also rate-limits: a burst of
events (an incident restarting 100 VMs) becomes one step per `min_interval`, not one per event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace

import kopf

from kvha.constants import GROUP, KUBEVIRT_GROUP, NODE_LEASE_NAMESPACE, VERSION
from kvha.k8s.informer import CACHES, Cache, Obj, Resource
from kvha.models.views import NodeView

IDLE_RECHECK = 30.0
"""Seconds a daemon waits at most when nothing changes and the core names no time: a safety net
for a change whose wake-up was lost, not a rhythm anything relies on."""


class Signal:
    """A version number that daemons wait on; `bump` wakes every waiter."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.version = 0
        # Futures, not one asyncio.Event: an Event binds to the first loop that waits on it, and
        # the module-level signals outlive a loop (each test runs its own).
        self._waiters: list[asyncio.Future[None]] = []

    def bump(self) -> None:
        self.version += 1
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done() and not waiter.get_loop().is_closed():
                waiter.set_result(None)

    async def changed(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter


DETECTION = Signal("detection")
WORKLOAD = Signal("workload")


@dataclass
class CloseWatch:
    """Nodes whose Lease renewals may change a verdict, by the daemon that asked: each daemon
    replaces its own set after every step, and removes it when it ends."""

    by_owner: dict[str, frozenset[str]] = field(default_factory=dict)
    _nodes: frozenset[str] = frozenset()

    def set(self, owner: str, nodes: Collection[str]) -> None:
        if nodes:
            self.by_owner[owner] = frozenset(nodes)
        else:
            self.by_owner.pop(owner, None)
        self._nodes = frozenset().union(*self.by_owner.values())

    def __contains__(self, node: object) -> bool:
        return node in self._nodes


CLOSE_WATCH = CloseWatch()


@dataclass(frozen=True)
class Mark:
    """The signals' versions when a step began to read the indices."""

    versions: tuple[int, ...]


def mark(signals: Sequence[Signal]) -> Mark:
    return Mark(tuple(s.version for s in signals))


async def pause(
    signals: Sequence[Signal],
    since: Mark,
    *,
    recheck_after: float | None,
    min_interval: float,
    stopped: kopf.DaemonStopped,
) -> None:
    """Until one of `signals` moved past `since`, `recheck_after` seconds passed, or the daemon is
    stopped; never less than `min_interval` (changes that arrive meanwhile make one step)."""
    wait = IDLE_RECHECK if recheck_after is None else max(recheck_after, 0.0)
    started = time.monotonic()
    await stopped.wait(min(min_interval, wait))
    deadline = started + wait
    while not stopped and not _moved(signals, since):
        left = deadline - time.monotonic()
        if left <= 0:
            return
        waiters = [asyncio.ensure_future(s.changed()) for s in signals]
        waiters.append(asyncio.ensure_future(_stop_or_timeout(stopped, left)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


def _moved(signals: Sequence[Signal], since: Mark) -> bool:
    return any(s.version != v for s, v in zip(signals, since.versions, strict=True))


async def _stop_or_timeout(stopped: kopf.DaemonStopped, seconds: float) -> None:
    await stopped.wait(seconds)


def _bump(signal: Signal) -> Callable[[Obj | None], None]:
    def watcher(_obj: Obj | None) -> None:
        signal.bump()

    return watcher


_NODE_SHAPES: dict[str, NodeView] = {}
"""Each node as last seen, its heartbeats left out: what a node event must change to matter."""


def _node_watcher(obj: Obj | None) -> None:
    """A node's heartbeat matters only for a closely watched node; anything else that changed
    (Ready flipping, a taint, a label) matters for every node. A deleted node wakes nothing by
    itself: it was either watched closely (under an incident, not Healthy) or the next recheck
    (at most `kvha.reconcile.policy.RECHECK_SECONDS` away) drops it."""
    if obj is None:
        DETECTION.bump()
        return
    view = NodeView.from_api(obj)
    shape = replace(
        view,
        conditions=tuple(replace(c, last_heartbeat_time=None) for c in view.conditions),
        kubevirt_heartbeat=None,
    )
    if _NODE_SHAPES.get(view.name) != shape or view.name in CLOSE_WATCH:
        _NODE_SHAPES[view.name] = shape
        DETECTION.bump()


def _lease_watcher(obj: Obj | None) -> None:
    """A relist (None) may hide any change; a single renewal matters only for a closely watched node."""
    if obj is None or (obj.get("metadata") or {}).get("name") in CLOSE_WATCH:
        DETECTION.bump()


def connect() -> None:
    """Attach the signals to the caches; called once, after the index functions registered them."""
    for resource, signal in (
        (Resource(GROUP, VERSION, "hapolicies"), DETECTION),
        (Resource(GROUP, VERSION, "nodefailovers"), DETECTION),
        (Resource("", "v1", "pods"), WORKLOAD),
        (Resource("", "v1", "namespaces"), WORKLOAD),
        (Resource("", "v1", "persistentvolumeclaims"), WORKLOAD),
        (Resource(KUBEVIRT_GROUP, "v1", "virtualmachines"), WORKLOAD),
        (Resource(KUBEVIRT_GROUP, "v1", "virtualmachineinstances"), WORKLOAD),
    ):
        _known(resource).watchers.append(_bump(signal))
    _known(Resource("", "v1", "nodes")).watchers.append(_node_watcher)
    _known(Resource("coordination.k8s.io", "v1", "leases", NODE_LEASE_NAMESPACE)).watchers.append(_lease_watcher)


def _known(resource: Resource) -> Cache:
    """The cache of `resource`, which an index function must already have registered: a typo here
    would otherwise create a cache nothing fills, and its signal would never move."""
    if resource not in CACHES.by_resource:
        raise LookupError(f"no cache of {resource}: no index function reads it")
    return CACHES.by_resource[resource]
