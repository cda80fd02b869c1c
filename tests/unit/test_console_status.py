"""`kvha status` and the demo's table: one renderer of a NodeFailover's timeline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kvha.console.status import render_status
from kvha.console.timeline import from_failover, render_table


def failover(name: str, *, finished: bool, detected: str = "2026-11-25T13:25:20Z") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": "2026-11-25T13:25:28Z"},
        "spec": {"nodeName": "host-1", "policyName": "demo", "detectedAt": detected},
        "status": {
            "phase": "Completed" if finished else "Restarting",
            "finished": finished,
            "restored": 1,
            "total": 2,
            "waiting": 1,
            "fencedAt": "2026-11-25T13:25:29Z",
            "completedAt": "2026-11-25T13:25:34Z" if finished else None,
            "message": "1 of 2 VMs running again, 1 waiting for capacity",
            "vms": [
                {
                    "name": "db-2",
                    "priority": "Highest",
                    "state": "WaitingForCapacity",
                    "reason": "no node it may run on has room for it without breaking its scheduling constraints",
                },
                {
                    "name": "app-1",
                    "priority": "High",
                    "state": "Running",
                    "node": "host-3",
                    "restartedAt": "2026-11-25T13:25:30Z",
                    "runningAt": "2026-11-25T13:25:31.5Z",
                },
            ],
        },
    }


def test_the_timeline_counts_from_the_failure_when_known_and_from_detection_otherwise() -> None:
    demo = render_table(
        from_failover(failover("f", finished=True), failed_at=datetime(2026, 11, 25, 13, 25, 19, tzinfo=UTC))
    )
    lines = demo.splitlines()
    assert lines[0] == "Host host-1 failed at 13:25:19 (t=0)."
    assert lines[1] == "  detected   t=   9.0s   (NodeFailover opened)"
    assert lines[5].split() == ["VM", "priority", "restarted", "running", "now", "on", "state"]
    assert lines[6].split()[:2] == ["db-2", "Highest"]  # priority first, whatever the state
    assert lines[7].split() == ["app-1", "High", "11.0s", "12.5s", "host-3", "Running"]
    status = render_table(from_failover(failover("f", finished=True)))
    assert status.splitlines()[0] == "Node host-1 unhealthy since 13:25:20 (t=0, as kvha saw it)."


def test_status_lists_open_incidents_first_then_the_recent_finished_ones() -> None:
    items = [
        failover("old", finished=True, detected="2026-11-20T10:00:00Z"),
        failover("older", finished=True, detected="2026-11-19T10:00:00Z"),
        failover("live", finished=False, detected="2026-11-18T10:00:00Z"),
    ]
    text = render_status(items, recent=1)
    summary = text.splitlines()[:3]
    assert [line.split()[0] for line in summary] == ["NAME", "live", "old"]
    assert summary[1].split()[:6] == ["live", "host-1", "Restarting", "1/2", "1", "yes"]
    assert "==> NodeFailover live" in text
    assert "older" not in text
    assert render_status([]) == "No NodeFailovers: no node incident so far."
