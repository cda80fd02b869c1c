"""`kvha status`: the open and recent NodeFailovers, each with its per-VM timeline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kvha.console.table import format_table
from kvha.console.timeline import from_failover, render_table

Obj = dict[str, Any]


def _open(failover: Obj) -> bool:
    return not (failover.get("status") or {}).get("finished", False)


def render_status(failovers: Sequence[Obj], *, recent: int = 3) -> str:
    """Every open NodeFailover (kvha still drives it: a Completed one whose VMs wait for capacity
    stays open), then the `recent` latest finished ones, newest first."""
    newest_first = sorted(failovers, key=lambda f: str((f.get("spec") or {}).get("detectedAt", "")), reverse=True)
    shown = [f for f in newest_first if _open(f)] + [f for f in newest_first if not _open(f)][:recent]
    if not shown:
        return "No NodeFailovers: no node incident so far."
    rows = []
    for failover in shown:
        status = failover.get("status") or {}
        rows.append(
            [
                failover["metadata"]["name"],
                (failover.get("spec") or {}).get("nodeName", ""),
                status.get("phase", "Detected"),
                f"{status.get('restored', 0)}/{status.get('total', 0)}",
                str(status.get("waiting", 0)),
                "yes" if _open(failover) else "no",
                status.get("message", ""),
            ]
        )
    lines = format_table(["NAME", "NODE", "PHASE", "RESTORED", "WAITING", "OPEN", "MESSAGE"], rows, indent="")
    for failover in shown:
        lines += ["", f"==> NodeFailover {failover['metadata']['name']}", render_table(from_failover(failover))]
    return "\n".join(lines)
