"""The failover as a timeline: a table for the terminal and a picture (PNG) for the README.

Times are seconds from the moment the host failed, which is the clock users care about ("how long
were my VMs down?"), split into the phases kvha reports: detected, fenced, restarted, running.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any


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
    failed_at: datetime
    detected: float
    fenced: float | None
    completed: float | None
    vms: tuple[VMTimeline, ...]


def _since(start: datetime, value: str | None) -> float | None:
    if not value:
        return None
    return (datetime.fromisoformat(value.replace("Z", "+00:00")) - start).total_seconds()


def from_failover(failover: dict[str, Any], *, failed_at: datetime) -> IncidentTimeline:
    status = failover.get("status") or {}
    vms = tuple(
        VMTimeline(
            name=e["name"],
            priority=e["priority"],
            state=e["state"],
            new_node=e.get("node"),
            restarted=_since(failed_at, e.get("restartedAt")),
            running=_since(failed_at, e.get("runningAt")),
            reason=e.get("reason"),
        )
        for e in status.get("vms", [])
    )
    return IncidentTimeline(
        node=failover["spec"]["nodeName"],
        failed_at=failed_at,
        detected=_since(failed_at, failover["metadata"].get("creationTimestamp")) or 0.0,
        fenced=_since(failed_at, status.get("fencedAt")),
        completed=_since(failed_at, status.get("completedAt")),
        vms=vms,
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:6.1f}s"


def render_table(timeline: IncidentTimeline) -> str:
    lines = [
        f"Host {timeline.node} failed at {timeline.failed_at:%H:%M:%S} (t=0).",
        f"  detected   t={_fmt(timeline.detected)}   (NodeFailover opened)",
        f"  fenced     t={_fmt(timeline.fenced)}",
        f"  completed  t={_fmt(timeline.completed)}",
        "",
        f"  {'VM':<14} {'priority':<9} {'restarted':>10} {'running':>9}  {'now on':<22} state",
    ]
    order = {"Highest": 0, "High": 1, "Medium": 2, "Low": 3, "Lowest": 4, "Disabled": 5}
    for vm in sorted(timeline.vms, key=lambda v: (order.get(v.priority, 9), v.running or 1e9, v.name)):
        state = vm.state if not vm.reason or vm.state == "Running" else f"{vm.state}: {vm.reason}"
        lines.append(
            f"  {vm.name:<14} {vm.priority:<9} {_fmt(vm.restarted):>10} {_fmt(vm.running):>9}  "
            f"{vm.new_node or '-':<22} {state}"
        )
    return "\n".join(lines)


def render_png(timeline: IncidentTimeline, path: Path) -> Path:
    """A Gantt-style picture: per VM, down (red) → restarting (amber) → running (green)."""
    import matplotlib  # noqa: PLC0415 - only the demo draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    vms: Sequence[VMTimeline] = sorted(timeline.vms, key=lambda v: (v.running is None, v.running or 0, v.name))
    end = max([timeline.completed or 0.0] + [v.running or 0.0 for v in vms]) + 5.0
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(vms) + 1.8))
    for row, vm in enumerate(vms):
        restarted = vm.restarted if vm.restarted is not None else end
        running = vm.running if vm.running is not None else end
        ax.barh(row, restarted, color="#d9534f", height=0.6)
        ax.barh(row, max(running - restarted, 0), left=restarted, color="#f0ad4e", height=0.6)
        if vm.running is not None:
            ax.barh(row, end - running, left=running, color="#5cb85c", height=0.6)
            ax.text(end - 0.3, row, vm.new_node or "", va="center", ha="right", fontsize=7, color="white")
        else:
            ax.text(end - 0.3, row, vm.state, va="center", ha="right", fontsize=7, color="white")
    marks = (("detected", timeline.detected, ":", -0.75), ("fenced", timeline.fenced, "--", len(vms) - 0.3))
    for label, at, style, label_row in marks:
        if at is not None:
            ax.axvline(at, color="black", linestyle=style, linewidth=1)
            ax.text(at, label_row, f" {label} {at:.0f}s", fontsize=8, va="bottom")
    ax.set_yticks(range(len(vms)), [f"{v.name} ({v.priority})" for v in vms], fontsize=8)
    ax.set_ylim(len(vms) - 0.4, -1.0)  # top to bottom, with room above the first bar for a label
    ax.set_xlim(0, end)
    ax.set_xlabel(f"seconds since host {timeline.node} failed")
    ax.set_title("kvha failover: down (red), restarting (amber), running again (green)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
