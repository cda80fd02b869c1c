"""kvha's own view of time for detection: when it saw each node signal change, whether its caches
are synced, and fresh reads of the API that confirm a verdict before kvha acts on it.

The decision core (`kvha.detection.observed`) is pure; this module owns the one tracker the
handlers share, reads the clocks, and makes the API calls.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from kvha import metrics
from kvha.detection import Instant, NodeSightings, Sightings, Verdict, assess_node
from kvha.k8s.api import Kube
from kvha.models.hapolicy import DetectionSpec
from kvha.models.timeutil import utcnow
from kvha.models.views import LeaseView, NodeView

SIGHTINGS = Sightings()
"""Fed by the node and lease indices (every watch event) and by fresh reads."""


def clock() -> Instant:
    return Instant(monotonic=time.monotonic(), wall=utcnow())


def caches_ready() -> bool:
    """For /readyz: not ready while the caches detection judges from are not synced."""
    return SIGHTINGS.synced


def caches_synced() -> None:
    """Called once every cache has taken in its whole initial list (`Caches.run`)."""
    SIGHTINGS.mark_synced(clock())
    metrics.observe_caches_synced()


@dataclass(frozen=True)
class FreshRead:
    """A Node and its Lease read from the API (not the cache), already fed to `SIGHTINGS`."""

    node: NodeView | None
    lease: LeaseView | None
    seen: NodeSightings
    now: Instant

    def verdict(self, detection: DetectionSpec) -> Verdict | None:
        if self.node is None:
            return None
        return assess_node(node=self.node, lease=self.lease, detection=detection, seen=self.seen, now=self.now)


async def read_fresh(kube: Kube, node_name: str) -> FreshRead:
    node_obj, lease_obj = await asyncio.gather(kube.read_node(node_name), kube.read_node_lease(node_name))
    now = clock()
    node = NodeView.from_api(node_obj) if node_obj is not None else None
    lease = LeaseView.from_api(lease_obj) if lease_obj is not None else None
    # A value the cache has not delivered yet is a change kvha observes now, exactly as if the
    # watch event had arrived: the operator's lag must not read as the node's silence.
    if node is not None:
        SIGHTINGS.observe_node(node, now=now)
    if lease is not None:
        SIGHTINGS.observe_lease(lease, now=now)
    return FreshRead(node=node, lease=lease, seen=SIGHTINGS.of(node_name), now=now)
