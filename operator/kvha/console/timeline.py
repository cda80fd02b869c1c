"""A NodeFailover as a timeline: what `kvha status` and `make demo` print (one renderer for both).

Times are seconds from t=0: the moment the host failed when that is known (the demo caused it),
else the start of the node's ill health as kvha saw it (`spec.detectedAt`). Per VM: when its
restart was issued, when it ran again, where, and its state with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kvha.models.base import Priority
from kvha.models.timeutil import parse_time


@dataclass(frozen=True)
class VMTimeline:
    name: str
    priority: str
    state: str
    new_node: str | None
    restarted: float | None
    running: float | None
    reason: str | None = None


@dataclass(frozen=True)
class IncidentTimeline:
    node: str
    origin: datetime
    origin_is_failure: bool
    """True when t=0 is the failure itself, False when it is kvha's `detectedAt`."""
    detected: float
    fenced: float | None
    completed: float | None
    vms: tuple[VMTimeline, ...]
    name: str = ""
    phase: str = ""
    message: str = ""


def _since(start: datetime, value: Any) -> float | None:
    moment = parse_time(value) if value else None
    return None if moment is None else (moment - start).total_seconds()


def from_failover(failover: dict[str, Any], *, failed_at: datetime | None = None) -> IncidentTimeline:
    """The timeline of a NodeFailover as the API returns it; t=0 is `failed_at` when given."""
    spec, status = failover.get("spec") or {}, failover.get("status") or {}
    detected_at = parse_time(spec.get("detectedAt"))
    origin = failed_at or detected_at or parse_time(failover["metadata"].get("creationTimestamp"))
    assert origin is not None, "a NodeFailover always has a creationTimestamp"
    vms = tuple(
        VMTimeline(
            name=e["name"],
            priority=e["priority"],
            state=e["state"],
            new_node=e.get("node"),
            restarted=_since(origin, e.get("restartedAt")),
            running=_since(origin, e.get("runningAt")),
            reason=e.get("reason"),
        )
        for e in status.get("vms", [])
    )
    return IncidentTimeline(
        node=spec.get("nodeName", ""),
        origin=origin,
        origin_is_failure=failed_at is not None,
        detected=_since(origin, failover["metadata"].get("creationTimestamp")) or 0.0,
        fenced=_since(origin, status.get("fencedAt")),
        completed=_since(origin, status.get("completedAt")),
        vms=vms,
        name=failover["metadata"].get("name", ""),
        phase=status.get("phase", "Detected"),
        message=status.get("message", ""),
    )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:6.1f}s"


def render_table(timeline: IncidentTimeline) -> str:
    if timeline.origin_is_failure:
        head = f"Host {timeline.node} failed at {timeline.origin:%H:%M:%S} (t=0)."
    else:
        head = f"Node {timeline.node} unhealthy since {timeline.origin:%H:%M:%S} (t=0, as kvha saw it)."
    lines = [
        head,
        f"  detected   t={_seconds(timeline.detected)}   (NodeFailover opened)",
        f"  fenced     t={_seconds(timeline.fenced)}",
        f"  completed  t={_seconds(timeline.completed)}",
        "",
    ]

    def order(vm: VMTimeline) -> tuple[int, float, str]:
        try:
            rank = -Priority.parse(vm.priority)
        except ValueError:
            rank = 0
        return rank, vm.running if vm.running is not None else 1e9, vm.name

    lines.append(f"  {'VM':<14} {'priority':<9} {'restarted':>10} {'running':>9}  {'now on':<22} state")
    for vm in sorted(timeline.vms, key=order):
        state = vm.state if not vm.reason or vm.state == "Running" else f"{vm.state}: {vm.reason}"
        lines.append(
            f"  {vm.name:<14} {vm.priority:<9} {_seconds(vm.restarted):>10} {_seconds(vm.running):>9}  "
            f"{vm.new_node or '-':<22} {state}"
        )
    return "\n".join(lines)
