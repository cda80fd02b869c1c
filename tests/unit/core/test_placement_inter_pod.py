"""Placement that agrees with the scheduler: pod (anti-)affinity between VMs, topology spread with
DoNotSchedule, and extended resources / hugepages, in the packer, its reference and the planner."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.strategies import FAILED_NODE, GI, NOW, make_node, make_vm, make_vmi, restart_spec
from kvha.models.base import Priority
from kvha.models.nodefailover import VMState
from kvha.models.views import NodeView, PodScheduling, PodView, Taint, VMView
from kvha.placement import Candidate, NodeCapacity, PodTopology, node_capacities, place
from kvha.planner import FailoverSnapshot, initial_entries, plan_failover
from placement_reference import place_by_scanning

HOST = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"


def anti_affinity(app: str, key: str = HOST) -> dict[str, Any]:
    return {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}
            ]
        }
    }


def affinity(app: str, key: str = HOST) -> dict[str, Any]:
    return {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}
            ]
        }
    }


def vm_object(name: str, *, labels: dict[str, str], **template_spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "db", "uid": f"vm-{name}"},
        "spec": {
            "runStrategy": "Always",
            "template": {
                "metadata": {"labels": labels},
                "spec": {"domain": {"cpu": {"cores": 2}, "memory": {"guest": "8Gi"}}, **template_spec},
            },
        },
    }


def replica(name: str, **template_spec: Any) -> VMView:
    return VMView.from_api(vm_object(name, labels={"app": "db"}, **template_spec))


def launcher_of(vm: VMView, node: str) -> PodView:
    return PodView(
        namespace=vm.namespace,
        name=f"virt-launcher-{vm.name}",
        node_name=node,
        phase="Running",
        cpu_millis=2_100,
        memory_bytes=8 * GI,
        vmi_uid=f"vmi-{vm.name}",
        scheduling=vm.scheduling,
    )


def hosts(*names: str, zones: dict[str, str] | None = None) -> list[NodeView]:
    return [make_node(n, labels={ZONE: zones[n]} if zones else None) for n in names]


def capacity_of(nodes: list[NodeView], memory: dict[str, int] | None = None) -> list[NodeCapacity]:
    memory = memory or {}
    return [
        NodeCapacity(n.name, labels=n.labels, free_cpu_millis=32_000, free_memory_bytes=memory.get(n.name, 100 * GI))
        for n in nodes
    ]


def candidate(vm: VMView, *, priority: int = 3) -> Candidate:
    return Candidate(vm.key, 2_100, 8 * GI, vm.placement, priority, vm.scheduling, vm.extended_requests)


def test_views_carry_the_template_labels_terms_and_extended_requests() -> None:
    spread = [
        {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {}},
        {"maxSkew": 1, "topologyKey": HOST, "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {}},
    ]
    obj = vm_object("gpu-1", labels={"app": "ml"}, affinity=anti_affinity("ml"), topologySpreadConstraints=spread)
    domain = obj["spec"]["template"]["spec"]["domain"]
    domain["memory"]["hugepages"] = {"pageSize": "1Gi"}
    domain["devices"] = {"gpus": [{"name": "g1", "deviceName": "nvidia.com/A100"}]}
    vm = VMView.from_api(obj)
    assert vm.scheduling.labels == {"app": "ml", "kubevirt.io": "virt-launcher", "vm.kubevirt.io/name": "gpu-1"}
    [term] = vm.scheduling.anti_affinity
    assert (term.topology_key, term.selector and term.selector.match_labels) == (HOST, (("app", "ml"),))
    assert [c.topology_key for c in vm.scheduling.spread] == [ZONE]  # ScheduleAnyway is a wish
    assert vm.extended_requests == (("hugepages-1Gi", 8 * GI), ("nvidia.com/A100", 1))
    node = NodeView.from_api(
        {"metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "8", "nvidia.com/A100": "2", "pods": "110"}}}
    )
    assert node.allocatable_extended == (("nvidia.com/A100", 2),)


def test_a_replica_restarts_only_on_a_host_without_its_peer() -> None:
    db1, db2 = replica("db-1", affinity=anti_affinity("db")), replica("db-2", affinity=anti_affinity("db"))
    nodes = hosts("host-2", "host-3")
    topology = PodTopology(nodes=nodes, pods=[launcher_of(db1, "host-2")])
    # host-2 has the most room, but db-1 runs there.
    result = place(
        candidates=[candidate(db2)],
        nodes=capacity_of(nodes, {"host-2": 150 * GI, "host-3": 50 * GI}),
        topology=topology,
    )
    assert result.assigned == {"db/db-2": "host-3"}


def test_a_replica_with_no_host_free_of_its_peers_waits_and_says_why() -> None:
    db1, db3 = replica("db-1", affinity=anti_affinity("db")), replica("db-3", affinity=anti_affinity("db"))
    db2 = replica("db-2", affinity=anti_affinity("db"))
    nodes = hosts("host-2", "host-3")
    topology = PodTopology(nodes=nodes, pods=[launcher_of(db1, "host-2"), launcher_of(db3, "host-3")])
    result = place(candidates=[candidate(db2)], nodes=capacity_of(nodes), topology=topology)
    assert result.unplaced == ("db/db-2",)
    assert result.reasons["db/db-2"] == (
        "no node it may run on has room for it without breaking its scheduling constraints: "
        "its required pod anti-affinity on kubernetes.io/hostname rules out 2 node(s) with room"
    )


def test_replicas_placed_in_one_plan_keep_apart_and_a_bystanders_anti_affinity_counts_too() -> None:
    db1, db2 = replica("db-1", affinity=anti_affinity("db")), replica("db-2", affinity=anti_affinity("db"))
    nodes = hosts("host-2", "host-3", "host-4")
    result = place(candidates=[candidate(db1), candidate(db2)], nodes=capacity_of(nodes), topology=PodTopology(nodes))
    assert len(set(result.assigned.values())) == 2
    # A VM without terms of its own is kept away from a pod whose anti-affinity selects it.
    plain = replica("db-9")
    guard = replica("guard", affinity=anti_affinity("db"))
    topology = PodTopology(nodes=nodes, pods=[launcher_of(guard, "host-2")])
    placed = place(candidates=[candidate(plain)], nodes=capacity_of(nodes, {"host-2": 200 * GI}), topology=topology)
    assert placed.assigned["db/db-9"] != "host-2"


def test_zone_anti_affinity_and_zone_affinity() -> None:
    zones = {"host-2": "a", "host-3": "a", "host-4": "b"}
    nodes = hosts("host-2", "host-3", "host-4", zones=zones)
    db1 = replica("db-1", affinity=anti_affinity("db", ZONE))
    db2 = replica("db-2", affinity=anti_affinity("db", ZONE))
    topology = PodTopology(nodes=nodes, pods=[launcher_of(db1, "host-2")])
    result = place(candidates=[candidate(db2)], nodes=capacity_of(nodes, {"host-3": 200 * GI}), topology=topology)
    assert result.assigned == {"db/db-2": "host-4"}
    # Affinity: an app server must run in the zone of a database pod; none runs yet → the
    # exception for the first of a group applies only to a pod that matches its own terms.
    app = VMView.from_api(vm_object("app-1", labels={"app": "web"}, affinity=affinity("db", ZONE)))
    near = place(candidates=[candidate(app)], nodes=capacity_of(nodes, {"host-2": 10 * GI}), topology=topology)
    assert near.assigned["db/app-1"] == "host-3"
    alone = place(candidates=[candidate(app)], nodes=capacity_of(nodes), topology=PodTopology(nodes))
    assert alone.unplaced == ("db/app-1",)
    first = replica("db-1", affinity=affinity("db", ZONE))
    assert place(candidates=[candidate(first)], nodes=capacity_of(nodes), topology=PodTopology(nodes)).assigned


def test_topology_spread_counts_every_domain_the_dead_host_included() -> None:
    spread = [
        {
            "maxSkew": 1,
            "topologyKey": HOST,
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "db"}},
        }
    ]
    web = [replica(f"db-{i}", topologySpreadConstraints=spread) for i in range(1, 4)]
    nodes = hosts("host-1", "host-2", "host-3")
    # host-1 died with db-1; db-2 and db-3 run on host-2 and host-3. With db-1's pod gone, host-1's
    # count is 0, so db-1 may go nowhere but host-1 itself (skew 2 elsewhere): the scheduler agrees.
    topology = PodTopology(nodes=nodes, pods=[launcher_of(web[1], "host-2"), launcher_of(web[2], "host-3")])
    survivors = capacity_of(nodes[1:])
    result = place(candidates=[candidate(web[0])], nodes=survivors, topology=topology)
    assert result.unplaced == ("db/db-1",)
    assert "topology spread constraint on kubernetes.io/hostname (maxSkew 1)" in result.reasons["db/db-1"]
    # nodeTaintsPolicy Honor leaves the tainted dead host out of the domains: then it fits.
    honour = [{**spread[0], "nodeTaintsPolicy": "Honor"}]
    tainted = [replace(nodes[0], taints=(Taint("node.kubernetes.io/unreachable", "NoSchedule"),)), *nodes[1:]]
    vm = replica("db-1", topologySpreadConstraints=honour)
    result = place(candidates=[candidate(vm)], nodes=survivors, topology=replace(topology, nodes=tainted))
    assert result.assigned


def test_extended_resources_and_hugepages_must_be_free_on_the_node() -> None:
    gpu = make_node("gpu-node", memory=64 * GI)
    gpu = replace(gpu, allocatable_extended=(("hugepages-1Gi", 16 * GI), ("nvidia.com/A100", 1)))
    plain = make_node("plain", memory=512 * GI)
    obj = vm_object("ml-1", labels={"app": "ml"})
    obj["spec"]["template"]["spec"]["domain"]["devices"] = {"gpus": [{"name": "g", "deviceName": "nvidia.com/A100"}]}
    ml = VMView.from_api(obj)
    capacities = node_capacities(nodes=[gpu, plain], pods=[], exclude=set())
    assert place(candidates=[candidate(ml)], nodes=capacities).assigned == {"db/ml-1": "gpu-node"}
    busy = PodView("other", "trainer", "gpu-node", "Running", 0, 0, extended_requests=(("nvidia.com/A100", 1),))
    capacities = node_capacities(nodes=[gpu, plain], pods=[busy], exclude=set())
    result = place(candidates=[candidate(ml)], nodes=capacities)
    assert result.reasons["db/ml-1"] == (
        "no node it may run on has room for it without breaking its scheduling constraints: "
        "its request of 1 nvidia.com/A100 rules out 2 node(s) with room"
    )


def test_the_planner_keeps_a_replica_off_its_peers_host_or_says_why_it_waits() -> None:
    db1, db2 = replica("db-1", affinity=anti_affinity("db")), replica("db-2", affinity=anti_affinity("db"))
    nodes = [*hosts("host-2", "host-3"), make_node(FAILED_NODE, ready="Unknown")]
    vmis = {
        db1.key: make_vmi(db1, uid="vmi-db-1", node="host-2"),
        db2.key: make_vmi(db2, uid="vmi-db-2", node=FAILED_NODE),
    }
    pods = [launcher_of(db1, "host-2"), launcher_of(db2, FAILED_NODE)]

    def plan(healthy: list[str]) -> Any:
        snapshot = FailoverSnapshot(
            failed_node=FAILED_NODE,
            entries=initial_entries(vms=[db1, db2], vmis=vmis, failed_node=FAILED_NODE, default_priority=Priority.HIGH),
            vms={db1.key: db1, db2.key: db2},
            vmis=vmis,
            launcher_pods={p.vmi_uid or "": [p] for p in pods},
            nodes=node_capacities(nodes=[n for n in nodes if n.name in healthy], pods=pods, exclude={FAILED_NODE}),
            fenced=True,
            unfenced_allowed=False,
            unfenced_safe=frozenset(),
            restart=restart_spec(),
            now=NOW,
            topology=PodTopology(nodes=nodes, pods=pods),
        )
        return {e.name: e for e in plan_failover(snapshot).entries}

    assert plan(["host-2", "host-3"])["db-2"].planned_node == "host-3"
    waiting = plan(["host-2"])["db-2"]
    assert waiting.state is VMState.WAITING_FOR_CAPACITY
    assert "its required pod anti-affinity on kubernetes.io/hostname" in (waiting.reason or "")


# --- the fast packer against the reference scan, with constraints between pods ------------------

APPS = ("db", "web", "cache")


@st.composite
def scheduling(draw: st.DrawFn) -> PodScheduling:
    app = draw(st.sampled_from(APPS))
    spec: dict[str, Any] = {}
    kind = draw(st.integers(0, 5))
    target = draw(st.sampled_from(APPS))
    key = draw(st.sampled_from((HOST, ZONE)))
    if kind == 0:
        spec["affinity"] = anti_affinity(target, key)
    elif kind == 1:
        spec["affinity"] = affinity(target, key)
    elif kind == 2:
        spec["topologySpreadConstraints"] = [
            {
                "maxSkew": draw(st.integers(1, 2)),
                "topologyKey": key,
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": target}},
                "minDomains": draw(st.integers(1, 4)),
            }
        ]
    labels = {"app": app}
    return PodScheduling.from_pod_spec(spec, namespace=draw(st.sampled_from(("db", "db", "other"))), labels=labels)


@st.composite
def inter_pod_cluster(draw: st.DrawFn) -> tuple[list[NodeCapacity], list[Candidate], PodTopology]:
    count = draw(st.integers(1, 8))
    names = [f"worker-{i}" for i in range(count)]
    views = [
        make_node(n, labels={ZONE: draw(st.sampled_from(("a", "b", "c")))} if draw(st.integers(0, 5)) else None)
        for n in names
    ]
    views = [
        replace(v, allocatable_extended=(("nvidia.com/gpu", draw(st.integers(0, 2))),)) if draw(st.booleans()) else v
        for v in views
    ]
    pods = [
        PodView(
            namespace="db",
            name=f"resident-{i}",
            node_name=draw(st.sampled_from(names)),
            phase="Running",
            cpu_millis=1_000,
            memory_bytes=GI,
            scheduling=draw(scheduling()),
        )
        for i in range(draw(st.integers(0, 6)))
    ]
    nodes = [
        replace(n, free_memory_bytes=draw(st.integers(0, 64)) * GI)
        for n in node_capacities(nodes=views, pods=pods, exclude=set())
    ]
    candidates = [
        Candidate(
            key=f"db/vm-{i:02d}",
            cpu_millis=draw(st.sampled_from((1, 2, 4))) * 1000,
            memory_bytes=draw(st.sampled_from((1, 4, 8, 16))) * GI,
            priority=draw(st.integers(1, 5)),
            scheduling=draw(scheduling()) if draw(st.integers(0, 3)) else None,
            extended=(("nvidia.com/gpu", 1),) if draw(st.integers(0, 4)) == 0 else (),
        )
        for i in range(draw(st.integers(0, 12)))
    ]
    return nodes, candidates, PodTopology(nodes=views, pods=pods)


@settings(max_examples=200, deadline=None)
@given(inter_pod_cluster())
def test_the_fast_packer_agrees_with_the_reference_scan_on_constraints_between_pods(
    case: tuple[list[NodeCapacity], list[Candidate], PodTopology],
) -> None:
    nodes, candidates, topology = case
    fast = place(candidates=candidates, nodes=nodes, topology=topology)
    slow = place_by_scanning(candidates=candidates, nodes=nodes, topology=topology)
    assert fast.assigned == slow.assigned
    assert fast.unplaced == slow.unplaced


@pytest.mark.parametrize("with_topology", [False, True])
def test_without_constraints_the_topology_changes_nothing(with_topology: bool) -> None:
    vms = [make_vm(f"vm-{i}", memory=(i % 4 + 1) * GI) for i in range(12)]
    nodes = [make_node(f"worker-{i}", memory=(i + 2) * 4 * GI) for i in range(4)]
    capacities = node_capacities(nodes=nodes, pods=[], exclude=set())
    candidates = [Candidate(vm.key, 1_000, vm.memory_bytes, scheduling=vm.scheduling) for vm in vms]
    plain = place(candidates=candidates, nodes=capacities)
    topology = PodTopology(nodes=nodes) if with_topology else None
    assert place(candidates=candidates, nodes=capacities, topology=topology) == plain
