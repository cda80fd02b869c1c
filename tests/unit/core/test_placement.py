"""Placement: where a VM may run (constraints), how much room nodes have, and who gets it first."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.strategies import GI, candidates, make_launcher, make_node, make_vm, node_capacities
from kvha.models.resources import Resources
from kvha.models.views import NodeSelectorRequirement, NodeSelectorTerm, Placement, Taint, Toleration
from kvha.placement import Candidate, NodeCapacity, fits, launcher_requests, place
from kvha.placement import node_capacities as capacities
from placement_reference import place_by_scanning

NODE = NodeCapacity(
    name="worker-07",
    labels={"topology.kubernetes.io/zone": "zone-b", "disk": "ssd", "cores": "64"},
    taints=(Taint("dedicated", "NoSchedule", "databases"), Taint("maintenance", "PreferNoSchedule")),
    free_cpu_millis=32_000,
    free_memory_bytes=128 * GI,
)
DB_TOLERATION = Toleration(key="dedicated", operator="Equal", value="databases", effect="NoSchedule")


def requirement(key: str, operator: str, *values: str) -> Placement:
    term = NodeSelectorTerm(match_expressions=(NodeSelectorRequirement(key, operator, values),))
    return Placement(required_terms=(term,), tolerations=(DB_TOLERATION,))


@pytest.mark.parametrize(
    ("placement", "allowed"),
    [
        (Placement(tolerations=(DB_TOLERATION,)), True),
        (Placement(), False),  # the NoSchedule taint is not tolerated
        (Placement(tolerations=(Toleration(operator="Exists"),)), True),
        (Placement(node_selector=(("disk", "ssd"),), tolerations=(DB_TOLERATION,)), True),
        (Placement(node_selector=(("disk", "hdd"),), tolerations=(DB_TOLERATION,)), False),
        (requirement("topology.kubernetes.io/zone", "In", "zone-a", "zone-b"), True),
        (requirement("topology.kubernetes.io/zone", "NotIn", "zone-b"), False),
        (requirement("gpu", "NotIn", "true"), True),
        (requirement("disk", "Exists"), True),
        (requirement("disk", "DoesNotExist"), False),
        (requirement("cores", "Gt", "32"), True),
        (requirement("cores", "Lt", "32"), False),
        (requirement("cores", "Gt", "many"), False),
        (requirement("gpu", "Gt", "1"), False),
        (Placement(required_terms=(NodeSelectorTerm(),), tolerations=(DB_TOLERATION,)), False),
        (
            Placement(
                required_terms=(
                    NodeSelectorTerm(match_fields=(NodeSelectorRequirement("metadata.name", "In", ("worker-07",)),)),
                ),
                tolerations=(DB_TOLERATION,),
            ),
            True,
        ),
        (
            Placement(
                required_terms=(
                    NodeSelectorTerm(match_expressions=(NodeSelectorRequirement("disk", "In", ("hdd",)),)),
                    NodeSelectorTerm(match_expressions=(NodeSelectorRequirement("cores", "In", ("64",)),)),
                ),
                tolerations=(DB_TOLERATION,),
            ),
            True,  # terms are ORed
        ),
    ],
)
def test_constraints_are_those_the_scheduler_enforces(placement: Placement, allowed: bool) -> None:
    assert fits(placement, NODE) is allowed


def test_capacity_is_allocatable_minus_the_requests_of_pods_still_running_there() -> None:
    vm = make_vm("db", vcpus=4, memory=16 * GI)
    nodes = [
        make_node("worker-01", cpu=32_000, memory=128 * GI),
        make_node("worker-02", cpu=32_000, memory=128 * GI, unschedulable=True),
        make_node("worker-03", cpu=32_000, memory=128 * GI, labels={"kubevirt.io/schedulable": "false"}),
        make_node("worker-04"),
    ]
    pods = [
        make_launcher(vm, vmi_uid="a", node="worker-01"),
        make_launcher(vm, vmi_uid="b", node="worker-01", phase="Succeeded"),  # holds nothing any more
        make_launcher(vm, vmi_uid="c", node=None),  # not scheduled yet
    ]
    result = capacities(nodes=nodes, pods=pods, exclude={"worker-04"})
    assert [(n.name, n.free_cpu_millis, n.free_memory_bytes) for n in result] == [
        ("worker-01", 32_000 - 4_100, 128 * GI - 16 * GI - 300 * 2**20),
    ]


def test_launcher_requests_use_the_old_pod_when_known_and_a_generous_estimate_otherwise() -> None:
    vm = make_vm("web", vcpus=2, memory=8 * GI)
    assert launcher_requests(vm, make_launcher(vm, vmi_uid="x", node="w")) == Resources(
        cpu_millis=2_100, memory_bytes=8 * GI + 300 * 2**20
    )
    estimate = launcher_requests(vm, None)
    assert estimate.cpu_millis == 2_100
    assert 8 * GI + 300 * 2**20 <= estimate.memory_bytes <= 8 * GI + 400 * 2**20


def test_higher_priority_goes_first_even_when_smaller() -> None:
    nodes = [NodeCapacity("w1", free_cpu_millis=8_000, free_memory_bytes=16 * GI)]
    vms = [Candidate("a/big-low", 4_000, 12 * GI, priority=1), Candidate("a/small-high", 4_000, 8 * GI, priority=5)]
    result = place(candidates=vms, nodes=nodes)
    assert result.assigned == {"a/small-high": "w1"}
    assert result.unplaced == ("a/big-low",)
    assert result.reasons["a/big-low"] == (
        "none of the 1 nodes it may run on has 4 CPU and 12Gi memory free (the most free memory is 8Gi)"
    )


def test_vms_are_spread_onto_the_node_with_most_free_memory() -> None:
    nodes = [
        NodeCapacity("w1", free_cpu_millis=64_000, free_memory_bytes=100 * GI),
        NodeCapacity("w2", free_cpu_millis=64_000, free_memory_bytes=95 * GI),
    ]
    vms = [Candidate(f"a/vm{i}", 1_000, 10 * GI) for i in range(4)]
    result = place(candidates=vms, nodes=nodes)
    assert sorted(result.assigned.values()) == ["w1", "w1", "w2", "w2"]


def test_a_node_short_of_cpu_is_passed_over_for_one_with_less_memory_but_enough_cpu() -> None:
    nodes = [
        NodeCapacity("roomy", free_cpu_millis=1_000, free_memory_bytes=200 * GI),
        NodeCapacity("busy", free_cpu_millis=16_000, free_memory_bytes=20 * GI),
    ]
    result = place(candidates=[Candidate("a/vm", 4_000, 8 * GI)], nodes=nodes)
    assert result.assigned == {"a/vm": "busy"}


def test_a_vm_no_node_may_run_is_told_so() -> None:
    result = place(
        candidates=[Candidate("a/gpu", 1_000, GI, placement=Placement(node_selector=(("gpu", "a100"),)))],
        nodes=[NodeCapacity("w1", free_cpu_millis=8_000, free_memory_bytes=16 * GI)],
    )
    assert result.reasons["a/gpu"] == (
        "no healthy schedulable node satisfies its nodeSelector, node affinity and tolerations"
    )


@st.composite
def cluster(draw: st.DrawFn) -> tuple[list[NodeCapacity], list[Candidate]]:
    nodes = draw(node_capacities())
    return nodes, draw(candidates(node_names=[n.name for n in nodes]))


@settings(max_examples=150, deadline=None)
@given(cluster())
def test_the_fast_packer_makes_the_same_choices_as_checking_every_node(
    case: tuple[list[NodeCapacity], list[Candidate]],
) -> None:
    nodes, vms = case
    fast = place(candidates=vms, nodes=nodes)
    slow = place_by_scanning(candidates=vms, nodes=nodes)
    assert fast.assigned == slow.assigned
    assert fast.unplaced == slow.unplaced


@settings(max_examples=150, deadline=None)
@given(cluster())
def test_no_vm_is_placed_where_it_may_not_run_or_does_not_fit(
    case: tuple[list[NodeCapacity], list[Candidate]],
) -> None:
    nodes, vms = case
    result = place(candidates=vms, nodes=nodes)
    by_key = {c.key: c for c in vms}
    by_name = {n.name: n for n in nodes}
    used: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for key, node in result.assigned.items():
        assert fits(by_key[key].placement, by_name[node])
        used[node][0] += by_key[key].cpu_millis
        used[node][1] += by_key[key].memory_bytes
    for node, (cpu, memory) in used.items():
        assert cpu <= by_name[node].free_cpu_millis
        assert memory <= by_name[node].free_memory_bytes
    assert set(result.assigned) | set(result.unplaced) == set(by_key)


@settings(max_examples=150, deadline=None)
@given(cluster())
def test_a_lower_priority_vm_never_takes_room_a_higher_priority_one_needed(
    case: tuple[list[NodeCapacity], list[Candidate]],
) -> None:
    nodes, vms = case
    result = place(candidates=vms, nodes=nodes)
    by_key = {c.key: c for c in vms}
    free = {n.name: [n.free_cpu_millis, n.free_memory_bytes] for n in nodes}
    for key, assigned_to in result.assigned.items():
        free[assigned_to][0] -= by_key[key].cpu_millis
        free[assigned_to][1] -= by_key[key].memory_bytes
    for waiting in (by_key[k] for k in result.unplaced):
        for key, node_name in result.assigned.items():
            lower = by_key[key]
            if lower.priority >= waiting.priority:
                continue
            node = next(n for n in nodes if n.name == node_name)
            would_fit = (
                fits(waiting.placement, node)
                and waiting.cpu_millis <= free[node_name][0] + lower.cpu_millis
                and waiting.memory_bytes <= free[node_name][1] + lower.memory_bytes
            )
            assert not would_fit, f"{lower.key} took room on {node_name} that {waiting.key} needed"
