"""Leadership that cannot overlap, on the real control plane: a leader cut off from the API
server in the middle of an incident stops writing before the standby may take over, and the API
server's audit log is the witness (each replica has its own client-certificate user)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

import pytest

from kvha_testbed.netproxy import BlackholeProxy
from kvha_testbed.operator_process import OperatorProcess
from kvha_testbed.scenario import Scenario
from kvha_testbed.waiting import wait_for

pytestmark = pytest.mark.integration
Obj = dict[str, Any]
LEADER_USER, STANDBY_USER = "kvha-replica-a", "kvha-replica-b"


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _free_since(standby: OperatorProcess, *, holder: str) -> datetime:
    """When the standby could first take the Lease, by its own observation (it logs it)."""
    found = re.findall(r"lease \S+ of (\S+) unchanged for \S+ by our clock: free since (\S+)", standby.log_text())
    times = [_ts(at) for who, at in found if who == holder]
    assert times, f"the standby never logged taking over from {holder}:\n{standby.log_tail()}"
    return times[-1]


def _writes_by(events: list[Obj], user: str) -> list[Obj]:
    return [e for e in events if (e.get("user") or {}).get("username") == user]


def _describe(event: Obj) -> str:
    status = (event.get("responseStatus") or {}).get("code")
    return f"{event['requestReceivedTimestamp']} {event['verb']} {event['requestURI']} -> {status}"


def test_blackholed_leader_stops_writing_before_the_standby_takes_over(scenario: Scenario) -> None:
    scene = scenario
    names = [f"vm-{i}" for i in range(6)]
    host_a, old_uids = scene.host_running(names, memory="32Gi", vm_memory="1Gi")
    scene.policy(
        fencing={"strategy": "OutOfServiceTaint", "confirmation": "Manual"},
        restart={"maxParallel": 1, "tierOrdering": "None"},  # one at a time: a long "mid-restart"
    )
    plane = scene.bed.control_plane
    with BlackholeProxy(("127.0.0.1", urlparse(plane.server).port or 443)) as proxy:
        leader = scene.operator(
            "kvha-a", kubeconfig=plane.mint_kubeconfig(LEADER_USER, ("system:masters",), server=proxy.url)
        ).start()
        standby = scene.operator("kvha-b", kubeconfig=plane.mint_kubeconfig(STANDBY_USER, ("system:masters",))).start(
            wait_leader=False
        )

        scene.power_off_until_restored(host_a)
        proxy.blackhole()  # mid-restart: the leader's renewals and writes go nowhere
        assert scene.failover()["status"]["restored"] < len(names), "blackholed too late to be mid-restart"
        standby.wait_leader(timeout=30)
        # The network comes back: whatever the old leader still has open, and sent while cut
        # off, arrives now. A leader that kept going would be writing after the takeover.
        resumed, dropped = proxy.heal()
        failover = scene.failover(phase="Completed", timeout=150)
        wait_for(lambda: not leader.alive(), what="the cut-off leader to exit", timeout=30, show=leader.log_tail)

    deadline = _free_since(standby, holder="kvha-a")
    events = plane.audit_events()
    ours = _writes_by(events, LEADER_USER)
    assert any(_ts(e["requestReceivedTimestamp"]) < deadline for e in ours), "the audit log misses the leader"
    late = [_describe(e) for e in ours if _ts(e["requestReceivedTimestamp"]) >= deadline]
    assert late == [], (
        f"writes by the old leader after {deadline.isoformat()} (connections resumed {resumed}, dropped "
        f"{dropped}):\n" + "\n".join(late)
    )
    assert _writes_by(events, STANDBY_USER), "the new leader's writes are in the audit log too"
    assert leader.exit_code == 3, leader.log_tail()  # exits so that its pod restarts as a standby

    assert failover["status"]["restored"] == len(names)
    for name in names:
        assert scene.vmi_uid(name) != old_uids[name]
        assert len(scene.bed.ledger.live_instances(f"{scene.namespace}/{name}")) == 1
    scene.bed.ledger.assert_no_split_brain()
