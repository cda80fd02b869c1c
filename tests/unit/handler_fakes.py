"""Stand-ins for what the kopf handlers read and call: the adapter, the caches' indices, kvha's
sightings. The handlers' own code runs unchanged on top of them."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from kvha.detection import Instant, Sightings
from kvha.models.timeutil import utcnow
from kvha.models.views import NodeView

INDEX_NAMES = (
    "node_index",
    "lease_index",
    "namespace_index",
    "pods_by_node",
    "launchers_by_vmi",
    "vm_index",
    "vmi_index",
    "claim_index",
    "policy_index",
    "failovers_by_node",
)


class FakeKube:
    """The adapter as a handler's step sees it; `conflict` makes every status write a 409."""

    def __init__(self, *, conflict: bool = False) -> None:
        self.conflict = conflict
        self.status_writes: list[tuple[str, str]] = []
        self.statuses: list[dict[str, Any]] = []
        self.actions: list[tuple[str, Any]] = []

    async def patch_status(self, plural: str, name: str, status: dict[str, Any], *, resource_version: str) -> bool:
        self.status_writes.append((name, resource_version))
        self.statuses.append(status)
        return not self.conflict

    async def set_out_of_service_taint(self, node: str, *, present: bool) -> bool:
        self.actions.append(("taint", (node, present)))
        return True

    def __getattr__(self, method: str) -> Any:
        async def act(*args: Any, **_: Any) -> None:
            self.actions.append((method, args))

        return act


def indices(**given: dict[Any, Any]) -> dict[str, Any]:
    """Every index the handlers read, empty unless given (as key → one value)."""
    unknown = set(given) - set(INDEX_NAMES)
    assert not unknown, f"no such index: {unknown}"
    return {name: {key: [value] for key, value in given.get(name, {}).items()} for name in INDEX_NAMES}


def observed(nodes: Iterable[NodeView], *, seen_for: float) -> Sightings:
    """kvha's own sightings: caches synced and every node seen as it is now `seen_for` s ago."""
    long_ago = Instant(monotonic=time.monotonic() - seen_for, wall=utcnow() - timedelta(seconds=seen_for))
    seen = Sightings()
    seen.mark_synced(long_ago)
    for node in nodes:
        seen.observe_node(node, now=long_ago)
    return seen
