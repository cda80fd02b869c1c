"""Admission control: how many host failures the protected VMs would survive right now."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.strategies import GI, candidates, make_launcher, make_vm, node_capacities
from kvha.admission import ProtectedVM, capacity_for_protected, failover_capacity, protected_demand, worst_hosts
from kvha.models.resources import Resources
from kvha.models.views import Placement
from kvha.placement import Candidate, NodeCapacity, launcher_placement, launcher_requests, place


def host(name: str, free_gib: int, **labels: str) -> NodeCapacity:
    return NodeCapacity(name, labels=labels, free_cpu_millis=64_000, free_memory_bytes=free_gib * GI)


def vms(prefix: str, count: int, gib: int, placement: Placement | None = None) -> list[Candidate]:
    return [Candidate(f"apps/{prefix}-{i}", 2_000, gib * GI, placement or Placement(), 3) for i in range(count)]


def test_a_cluster_with_room_for_one_host_s_vms_tolerates_one_failure() -> None:
    nodes = [host("a", 40), host("b", 40), host("c", 40)]
    protected = {"a": vms("a", 4, 16), "b": vms("b", 2, 16), "c": vms("c", 1, 16)}
    # Losing "a" displaces 64 GiB, which b and c (80 GiB) absorb; losing a and b displaces 96 GiB
    # onto c's 40 GiB, which does not fit.
    assert failover_capacity(protected_by_node=protected, nodes=nodes, limit=3) == 1


def test_the_answer_never_exceeds_the_limit_asked_for() -> None:
    nodes = [host(f"n{i}", 500) for i in range(6)]
    protected = {"n0": vms("x", 2, 8)}
    assert failover_capacity(protected_by_node=protected, nodes=nodes, limit=2) == 2
    assert failover_capacity(protected_by_node=protected, nodes=nodes, limit=0) == 0


def test_vms_that_only_one_host_may_run_are_not_protected_against_its_loss() -> None:
    gpu = Placement(node_selector=(("gpu", "a100"),))
    nodes = [host("gpu-1", 100, gpu="a100"), host("cpu-1", 500), host("cpu-2", 500)]
    protected = {"gpu-1": vms("train", 1, 32, gpu)}
    assert failover_capacity(protected_by_node=protected, nodes=nodes, limit=1) == 0


def test_no_protected_vms_means_any_failure_is_tolerated_up_to_the_hosts_there_are() -> None:
    nodes = [host("a", 10), host("b", 10)]
    assert failover_capacity(protected_by_node={}, nodes=nodes, limit=5) == 2


@st.composite
def clusters(draw: st.DrawFn) -> tuple[dict[str, list[Candidate]], list[NodeCapacity], int]:
    nodes = draw(node_capacities(min_size=1, max_size=8))
    names = [n.name for n in nodes]
    protected: dict[str, list[Candidate]] = {}
    for vm in draw(candidates(node_names=names, max_size=16)):
        protected.setdefault(draw(st.sampled_from(names)), []).append(vm)
    return protected, nodes, draw(st.integers(0, 4))


@settings(max_examples=200, deadline=None)
@given(clusters())
def test_the_reported_tolerance_is_backed_by_an_actual_placement(
    case: tuple[dict[str, list[Candidate]], list[NodeCapacity], int],
) -> None:
    """For every k up to the answer, the k hosts with the most protected memory can fail and their
    VMs still all be placed; one more such failure cannot (unless the limit stopped the search)."""
    protected, nodes, limit = case
    tolerated = failover_capacity(protected_by_node=protected, nodes=nodes, limit=limit)
    assert 0 <= tolerated <= limit
    worst_first = sorted(
        {n.name for n in nodes} | set(protected),
        key=lambda h: (
            -sum(c.memory_bytes for c in protected.get(h, ())),
            -sum(c.cpu_millis for c in protected.get(h, ())),
            -next((n.free_memory_bytes for n in nodes if n.name == h), 0),
            h,
        ),
    )

    def survives(k: int) -> bool:
        failed = set(worst_first[:k])
        displaced = [c for h in failed for c in protected.get(h, ())]
        return (
            k <= len(worst_first)
            and not place(candidates=displaced, nodes=[n for n in nodes if n.name not in failed]).unplaced
        )

    assert all(survives(k) for k in range(1, tolerated + 1))
    if tolerated < limit:
        assert not survives(tolerated + 1)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(1, 8)), min_size=1, max_size=25),
    st.lists(st.integers(4, 40), min_size=2, max_size=6),
    st.integers(1, 4),
)
def test_building_candidates_for_the_worst_hosts_only_gives_the_same_answer(
    vms_spec: list[tuple[int, int]],
    free_gib: list[int],
    limit: int,
) -> None:
    """The operator's cheap path (kvha.admission.capacity_for_protected) must agree with the
    exact one that builds a candidate for every protected VM."""

    nodes = [host(f"h{i}", gib) for i, gib in enumerate(free_gib)]
    protected = []
    for index, (host_index, gib) in enumerate(vms_spec):
        node = f"h{host_index % len(nodes)}"
        vm = make_vm(f"vm{index}", memory=gib * GI)
        protected.append(
            ProtectedVM(vm=vm, node=node, pod=make_launcher(vm, vmi_uid=f"uid-{index:05d}", node=node), priority=3)
        )
    exact: dict[str, list[Candidate]] = {}
    for item in protected:
        requests = launcher_requests(item.vm, item.pod)
        exact.setdefault(item.node, []).append(
            Candidate(item.vm.key, requests.cpu_millis, requests.memory_bytes, launcher_placement(item.vm, item.pod), 3)
        )
    assert capacity_for_protected(protected=protected, nodes=nodes, limit=limit) == failover_capacity(
        protected_by_node=exact, nodes=nodes, limit=limit
    )


def test_protected_demand_keeps_cpu_and_memory_apart_and_ranks_hosts_by_memory_first() -> None:
    """A host with many cores but little memory is not the worst one to lose: admission control
    ranks by memory, then CPU. Mixing the two up in `protected_demand` reverses this order."""
    many_cores = make_vm("many-cores", vcpus=32, memory=2 * GI)
    much_memory = make_vm("much-memory", vcpus=1, memory=64 * GI)
    protected = [
        ProtectedVM(vm=vm, node=node, pod=make_launcher(vm, vmi_uid=f"uid-{node}", node=node), priority=3)
        for vm, node in ((many_cores, "h-cores"), (much_memory, "h-memory"))
    ]
    demand = protected_demand(protected)
    assert demand == {
        "h-cores": Resources(cpu_millis=32_100, memory_bytes=2 * GI + 300 * 2**20),
        "h-memory": Resources(cpu_millis=1_100, memory_bytes=64 * GI + 300 * 2**20),
    }
    nodes = [host("h-cores", 100), host("h-memory", 100)]
    assert worst_hosts(protected=protected, nodes=nodes, count=1) == ["h-memory"]
