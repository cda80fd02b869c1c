"""When kvha itself saw each node signal change, on its own monotonic clock.

A node's timestamps (Lease `renewTime`, condition heartbeats, `kubevirt.io/heartbeat`) are written
with the node's clock. Compared with kvha's clock they turn a node whose clock runs a minute behind
into a dead node, and a watchdog deadline into a reset that never happened. So, as the node
lifecycle controller does with its `probeTimestamp` (and client-go's leader election with its
`observedTime`), kvha treats those values as opaque: what counts is *when kvha observed a value
change*, read from `time.monotonic()`, which no wall-clock step moves.

Two more rules come from kvha's own limits, not the node's:

* A value kvha has not seen change since it started counts from when it was first seen: a restart
  must not make every node look as old as its last timestamp.
* Nothing is judged before the caches are synced (every watch kvha judges from has delivered its
  initial list), and a value first seen before that moment counts from that moment: the time the
  operator spent catching up with its watches is its own lag, never a node's silence.

`Sightings` is plain data with the clock passed in; the handlers feed it from the kopf indices and
from fresh reads of the API, and detection reads `NodeSightings` from it.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from kvha.constants import COND_READY
from kvha.models.views import LeaseView, NodeView

_LEASE = "lease"
_STATUS_HEARTBEAT = "status-heartbeat"
_KUBEVIRT_HEARTBEAT = "kubevirt-heartbeat"
_CONDITION = "condition/"


@dataclass(frozen=True, slots=True)
class Instant:
    """One reading of kvha's clocks: the monotonic one decides, the wall one is for status and
    messages (and for comparing with times kvha itself recorded in the API)."""

    monotonic: float
    wall: datetime


@dataclass(frozen=True, slots=True)
class Sighting:
    """When kvha first saw the current value of one signal."""

    at: float
    """kvha's monotonic clock, seconds."""
    wall: datetime
    """kvha's wall clock at the same moment."""

    @classmethod
    def of(cls, instant: Instant) -> Sighting:
        return cls(at=instant.monotonic, wall=instant.wall)

    def age(self, now: Instant) -> float:
        return max(now.monotonic - self.at, 0.0)


@dataclass(frozen=True, slots=True)
class NodeSightings:
    """What detection needs of one node: since when each of its signals has held its value."""

    lease: Sighting | None = None
    """The Lease's current renewTime."""
    kubevirt_heartbeat: Sighting | None = None
    """The current `kubevirt.io/heartbeat` annotation."""
    status_heartbeat: Sighting | None = None
    """The Ready condition's current lastHeartbeatTime (the kubelet's status update)."""
    conditions: Mapping[str, Sighting] = field(default_factory=dict)
    """By condition type: since when the condition has had its current status."""


class Sightings:
    """The first-observed time of the current value of every signal of every node.

    Fed from several threads (kopf runs synchronous index functions in its executor), hence the
    lock; each update is a few dictionary operations.
    """

    def __init__(self) -> None:
        # node → signal kind → (value, first seen): by node first, so one node's sightings are a
        # dictionary lookup even with thousands of nodes.
        self._seen: dict[str, dict[str, tuple[Hashable, Sighting]]] = {}
        self._synced_at: Instant | None = None
        # node → its NodeSightings as last built, dropped when one of its signals changes: a policy
        # evaluation reads every node's, and at 500 nodes building them afresh each time was a
        # tenth of the leader's steady CPU (bench/scale_bench.py, py-spy).
        self._built: dict[str, NodeSightings] = {}
        self._lock = threading.Lock()

    @property
    def synced(self) -> bool:
        """Whether every watch kvha judges from has delivered its initial list."""
        return self._synced_at is not None

    def mark_synced(self, now: Instant) -> None:
        with self._lock:
            if self._synced_at is None:
                self._synced_at = now
                self._built.clear()  # what was seen before the sync now counts from the sync

    def observe_node(self, node: NodeView, *, now: Instant) -> None:
        ready = node.condition(COND_READY)
        with self._lock:
            for condition in node.conditions:
                # The transition time belongs to the value: a flap kvha missed between two
                # observations still restarts the count.
                value = (condition.status, condition.last_transition_time)
                self._see(node.name, _CONDITION + condition.type, value, now)
            self._see(node.name, _STATUS_HEARTBEAT, ready.last_heartbeat_time if ready else None, now)
            self._see(node.name, _KUBEVIRT_HEARTBEAT, node.kubevirt_heartbeat, now)

    def observe_lease(self, lease: LeaseView, *, now: Instant) -> None:
        with self._lock:
            self._see(lease.node_name, _LEASE, lease.renew_time, now)

    def retain(self, nodes: Collection[str]) -> None:
        """Forget the nodes that are gone (their Node object was deleted)."""
        with self._lock:
            for name in [n for n in self._seen if n not in nodes]:
                del self._seen[name]
                self._built.pop(name, None)

    def of(self, node: str) -> NodeSightings:
        with self._lock:
            built = self._built.get(node)
            if built is None:
                built = self._build(self._seen.get(node, {}))
                if node in self._seen:  # kept only for nodes `retain` can forget
                    self._built[node] = built
            return built

    def _build(self, kinds: Mapping[str, tuple[Hashable, Sighting]]) -> NodeSightings:
        def current(kind: str) -> Sighting | None:
            entry = kinds.get(kind)
            if entry is None or entry[0] is None:
                return None  # no such value (no annotation, no renewTime): nothing to time
            return self._after_sync(entry[1])

        return NodeSightings(
            lease=current(_LEASE),
            kubevirt_heartbeat=current(_KUBEVIRT_HEARTBEAT),
            status_heartbeat=current(_STATUS_HEARTBEAT),
            conditions={
                kind.removeprefix(_CONDITION): self._after_sync(sighting)
                for kind, (_, sighting) in kinds.items()
                if kind.startswith(_CONDITION)
            },
        )

    def _see(self, node: str, kind: str, value: Hashable, now: Instant) -> None:
        # Any change counts, in either direction: a node clock stepped back by NTP still proves
        # the node is writing.
        kinds = self._seen.setdefault(node, {})
        previous = kinds.get(kind)
        if previous is None or previous[0] != value:
            kinds[kind] = (value, Sighting.of(now))
            self._built.pop(node, None)

    def _after_sync(self, sighting: Sighting) -> Sighting:
        synced = self._synced_at
        if synced is not None and sighting.at < synced.monotonic:
            return Sighting.of(synced)
        return sighting
