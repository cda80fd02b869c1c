"""The failover timeline as a picture (PNG) for the README.

The table the demo prints is `kvha.console.timeline`, the renderer of `kvha status`: one for both.
Times are seconds from the moment the host failed, which is the clock users care about ("how long
were my VMs down?"), split into the phases kvha reports: detected, fenced, restarted, running.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kvha.console.timeline import IncidentTimeline, VMTimeline


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
