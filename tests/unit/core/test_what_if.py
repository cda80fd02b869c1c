"""`kvha plan`'s core: the operator's failover replayed on one read of the cluster, wave by wave,
and the report people and CI read from it."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import yaml

from core.strategies import GI, NOW, make_launcher, make_lease, make_node, make_vm, make_vmi
from kvha.console.plan import PolicyRecord, exit_status, make_report, render
from kvha.models.base import Priority
from kvha.models.hapolicy import HAPolicySpec, HAPolicyStatus
from kvha.models.nodefailover import VMState
from kvha.models.views import PodView, VMIView, VMView
from kvha.reconcile import ClusterRead, what_if

POLICY = HAPolicySpec.model_validate(
    {"restart": {"maxParallel": 2, "tierOrdering": "WaitForReady"}, "fencing": {"confirmation": "Manual"}}
)
ANTI_AFFINITY = {
    "podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}
        ]
    }
}


def cluster(placement: dict[str, list[VMView]], *, memory: int = 64 * GI) -> ClusterRead:
    nodes = [make_node(name, memory=memory) for name in placement]
    vmis: dict[str, VMIView] = {}
    pods: list[PodView] = []
    for host, vms in placement.items():
        for vm in vms:
            vmis[vm.key] = make_vmi(vm, uid=f"vmi-{vm.name}", node=host)
            pods.append(replace(make_launcher(vm, vmi_uid=f"vmi-{vm.name}", node=host), scheduling=vm.scheduling))
    return ClusterRead(
        nodes=nodes,
        leases={n.name: make_lease(n.name) for n in nodes},
        vms=[vm for vms in placement.values() for vm in vms],
        namespace_labels={},
        vmis=vmis,
        pods=pods,
        claims={},
        now=NOW,
    )


def db_replica(name: str) -> VMView:
    return VMView.from_api(
        {
            "metadata": {"name": name, "namespace": "apps", "annotations": {"kvha.io/restart-priority": "Highest"}},
            "spec": {
                "runStrategy": "Always",
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": {"affinity": ANTI_AFFINITY, "domain": {"memory": {"guest": "8Gi"}}},
                },
            },
        }
    )


def test_restarts_come_in_waves_of_max_parallel_highest_tier_first() -> None:
    victims = [
        make_vm("db", priority="Highest", memory=8 * GI),
        make_vm("app-1", priority="High", memory=8 * GI),
        make_vm("app-2", priority="High", memory=8 * GI),
        make_vm("app-3", priority="High", memory=8 * GI),
        make_vm("lab", priority="Lowest", memory=60 * GI),
        make_vm("off", priority="Disabled", memory=GI),
    ]
    read = cluster({"host-1": victims, "host-2": [], "host-3": []})
    plan = what_if(policy_name="p", policy=POLICY, status=HAPolicyStatus(), read=read, failed=["host-1"])
    rows = {vm.name: vm for vm in plan.vms}
    assert [(vm.name, vm.wave) for vm in plan.vms if vm.wave] == [
        ("db", 1),
        ("app-1", 2),
        ("app-2", 2),
        ("app-3", 3),
    ]
    assert {rows[n].planned_node for n in ("db", "app-1", "app-2", "app-3")} <= {"host-2", "host-3"}
    assert rows["lab"].state is VMState.WAITING_FOR_CAPACITY
    assert "60.3Gi memory free" in (rows["lab"].reason or "")
    assert rows["off"].state is VMState.SKIPPED
    assert (plan.capacity_now, plan.capacity_after) == (0, 0)  # lab fits nowhere even now


def test_the_storm_guard_holds_everything_when_two_of_three_hosts_fail() -> None:
    read = cluster({"host-1": [make_vm("a")], "host-2": [make_vm("b")], "host-3": []})
    plan = what_if(policy_name="p", policy=POLICY, status=HAPolicyStatus(), read=read, failed=["host-1", "host-2"])
    assert plan.storm.blocks_action
    assert all(vm.state is VMState.PENDING and vm.wave is None for vm in plan.vms)
    assert all(vm.reason == "held by the storm guard" for vm in plan.vms)
    assert plan.storm.message.startswith("2 of 3 watched nodes are unhealthy, above the limit of 1")


def test_a_replica_is_planned_only_onto_a_host_without_its_peer() -> None:
    read = cluster({"host-1": [db_replica("db-1")], "host-2": [db_replica("db-2")], "host-3": []}, memory=32 * GI)
    # host-2 has as much room as host-3 and sorts first: only the anti-affinity sends db-1 elsewhere.
    plan = what_if(policy_name="p", policy=POLICY, status=HAPolicyStatus(), read=read, failed=["host-1"])
    [db1] = plan.vms
    assert (db1.state, db1.planned_node) == (VMState.RUNNING, "host-3")
    read = cluster({"host-1": [db_replica("db-1")], "host-2": [db_replica("db-2")], "host-3": [db_replica("db-3")]})
    [db1] = what_if(policy_name="p", policy=POLICY, status=HAPolicyStatus(), read=read, failed=["host-1"]).vms
    assert db1.state is VMState.WAITING_FOR_CAPACITY
    assert "its required pod anti-affinity on kubernetes.io/hostname rules out 2 node(s)" in (db1.reason or "")


def report_of(read: ClusterRead, **kwargs: Any) -> Any:
    policies = [PolicyRecord("production", POLICY, HAPolicyStatus())]
    return make_report(server="https://127.0.0.1:6443", policies=policies, read=read, **kwargs)


def test_the_report_reads_as_a_table_says_it_wrote_nothing_and_fails_ci_on_a_shortfall() -> None:
    victims = [make_vm("db", priority="Highest", memory=8 * GI), make_vm("lab", priority="Lowest", memory=60 * GI)]
    read = cluster({"host-1": victims, "host-2": [], "host-3": []}, memory=48 * GI)
    report = report_of(read, failed=["host-1"], require=Priority.HIGHEST)
    text = render(report, "table")
    assert text.splitlines()[0] == (
        "# read-only: kvha plan lists objects and writes nothing to the cluster (https://127.0.0.1:6443)"
    )
    lines = text.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("VM "))
    assert header.split() == ["VM", "PRIORITY", "FROM", "PLANNED", "WAVE", "OUTCOME"]
    db_line = next(line for line in lines if line.lstrip().startswith("apps/db "))
    assert db_line.split()[:6] == ["apps/db", "Highest", "host-1", "host-2", "1", "Restarted"]
    lab_line = next(line for line in lines if line.lstrip().startswith("apps/lab "))
    assert lab_line.split()[:5] == ["apps/lab", "Lowest", "host-1", "-", "-"]
    assert "WaitingForCapacity: none of the 2 nodes it may run on has" in lab_line
    assert "2 VMs: 1 restarted in 1 wave(s), 1 waiting for capacity" in text
    assert text.endswith("OK: every protected VM of priority Highest or higher would run again")
    assert exit_status(report) == 0
    strict = report_of(read, failed=["host-1"], require=Priority.LOWEST)
    assert exit_status(strict) == 1
    assert render(strict, "table").endswith("FAIL: 1 protected VM(s) of priority Lowest or higher would not run again")
    data = json.loads(render(strict, "json"))
    assert data["readOnly"] is True
    assert data["requirement"] == {"priority": "Lowest", "met": False}
    [policy] = data["policies"]
    assert [(v["name"], v["state"], v["plannedNode"], v["wave"]) for v in policy["vms"]] == [
        ("db", "Running", "host-2", 1),
        ("lab", "WaitingForCapacity", None, None),
    ]
    assert yaml.safe_load(render(strict, "yaml")) == data


def test_fail_worst_picks_admission_controls_worst_host_and_says_why() -> None:
    read = cluster(
        {
            "host-1": [make_vm("small", memory=4 * GI)],
            "host-2": [make_vm("big-1", memory=16 * GI), make_vm("big-2", memory=16 * GI)],
            "host-3": [],
        }
    )
    report = report_of(read, failed=[], fail_worst=1)
    assert [w.name for w in report.worst] == ["host-2"]
    assert report.plans[0].failed == ("host-2",)
    text = render(report, "table")
    assert "  host-2: 2 protected VMs requesting 32.6Gi memory and 4200m CPU" in text
