"""Builders and Hypothesis strategies for realistic cluster objects (nodes, VMs, instances, pods).

Sizes are those of real clusters: hosts of 16–128 cores and 64 GiB–1 TiB, VMs of 1–16 vCPUs and
1–64 GiB, launcher pods requesting the guest plus KubeVirt's overhead. Label and taint vocabularies
are small on purpose, so that random constraints often match some nodes and not others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from kvha.constants import KUBEVIRT_SCHEDULABLE_LABEL, OUT_OF_SERVICE_TAINT_KEY, OUT_OF_SERVICE_TAINT_VALUE
from kvha.detection import Instant, NodeSightings, Sighting, StormState
from kvha.models.hapolicy import HAPolicySpec, HAPolicyStatus, RestartSpec, TierOrdering
from kvha.models.nodefailover import NodeFailoverSpec, NodeFailoverStatus
from kvha.models.views import (
    LeaseView,
    NodeCondition,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    NodeView,
    Placement,
    PodView,
    Taint,
    Toleration,
    VMIView,
    VMView,
)
from kvha.placement import Candidate, NodeCapacity
from kvha.reconcile import AdmissionSnapshot, FailoverRecord, IncidentSnapshot, PolicySnapshot, assess_admission

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GI = 2**30
FAILED_NODE = "worker-failed"
OUT_OF_SERVICE = Taint(OUT_OF_SERVICE_TAINT_KEY, "NoExecute", OUT_OF_SERVICE_TAINT_VALUE)
PRIORITIES = ("Lowest", "Low", "Medium", "High", "Highest")


MONOTONIC_NOW = 50_000.0
"""kvha's monotonic clock at NOW (an arbitrary origin, as time.monotonic() has)."""
CLOCK = Instant(monotonic=MONOTONIC_NOW, wall=NOW)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def seen_ago(seconds: float) -> Sighting:
    """A value kvha first saw `seconds` before NOW."""
    return Sighting(at=MONOTONIC_NOW - seconds, wall=ago(seconds))


def sightings(
    *,
    lease_ago: float | None = 3,
    ready_for: float = 3600,
    heartbeat_ago: float | None = 5,
    kubevirt_ago: float | None = None,
    conditions: dict[str, float] | None = None,
) -> NodeSightings:
    """What kvha observed of a node: since when each signal has held its current value."""
    return NodeSightings(
        lease=seen_ago(lease_ago) if lease_ago is not None else None,
        kubevirt_heartbeat=seen_ago(kubevirt_ago) if kubevirt_ago is not None else None,
        status_heartbeat=seen_ago(heartbeat_ago) if heartbeat_ago is not None else None,
        conditions={"Ready": seen_ago(ready_for), **{k: seen_ago(v) for k, v in (conditions or {}).items()}},
    )


def make_node(
    name: str,
    *,
    ready: str = "True",
    ready_for: float = 3600,
    heartbeat_ago: float = 5,
    cpu: int = 32_000,
    memory: int = 256 * GI,
    labels: dict[str, str] | None = None,
    taints: tuple[Taint, ...] = (),
    unschedulable: bool = False,
    fence_confirmed: str | None = None,
    kubevirt_heartbeat: datetime | None = None,
) -> NodeView:
    return NodeView(
        name=name,
        labels={"kubernetes.io/hostname": name, KUBEVIRT_SCHEDULABLE_LABEL: "true", **(labels or {})},
        taints=taints,
        conditions=(NodeCondition("Ready", ready, ago(ready_for), ago(heartbeat_ago)),),
        allocatable_cpu_millis=cpu,
        allocatable_memory_bytes=memory,
        unschedulable=unschedulable,
        fence_confirmed=fence_confirmed,
        kubevirt_heartbeat=kubevirt_heartbeat,
    )


def make_lease(node: str, *, renewed_ago: float = 3) -> LeaseView:
    return LeaseView(node_name=node, renew_time=ago(renewed_ago), duration_seconds=40)


def make_vm(
    name: str,
    *,
    namespace: str = "apps",
    priority: str | None = None,
    run_strategy: str = "Always",
    vcpus: int = 2,
    memory: int = 4 * GI,
    placement: Placement | None = None,
) -> VMView:
    return VMView(
        namespace=namespace,
        name=name,
        uid=f"vm-{name}",
        annotations={"kvha.io/restart-priority": priority} if priority else {},
        run_strategy=run_strategy,
        cpu_millis=vcpus * 1000,
        memory_bytes=memory,
        placement=placement or Placement(),
    )


def make_vmi(vm: VMView, *, uid: str, node: str | None, phase: str = "Running") -> VMIView:
    return VMIView(namespace=vm.namespace, name=vm.name, uid=uid, node_name=node, phase=phase, ready=phase == "Running")


def make_launcher(vm: VMView, *, vmi_uid: str, node: str | None, phase: str = "Running") -> PodView:
    """A virt-launcher pod as KubeVirt renders it: the guest plus ~300 MiB and 100m of overhead."""
    return PodView(
        namespace=vm.namespace,
        name=f"virt-launcher-{vm.name}-{vmi_uid[-5:]}",
        node_name=node,
        phase=phase,
        cpu_millis=vm.cpu_millis + 100,
        memory_bytes=vm.memory_bytes + 300 * 2**20,
        vmi_uid=vmi_uid,
        placement=vm.placement,
        controller_kind="VirtualMachineInstance",
        controller_uid=vmi_uid,
    )


def restart_spec(*, max_parallel: int = 10, tier_ordering: TierOrdering = TierOrdering.NONE) -> RestartSpec:
    return RestartSpec(max_parallel=max_parallel, tier_ordering=tier_ordering)


# --- constraints -------------------------------------------------------------------------------

ZONES = ("zone-a", "zone-b", "zone-c")
TAINTS = (
    Taint("dedicated", "NoSchedule", "databases"),
    Taint("gpu", "NoExecute", "true"),
    Taint("maintenance", "PreferNoSchedule", ""),
)


@st.composite
def node_labels(draw: st.DrawFn) -> dict[str, str]:
    labels = {"topology.kubernetes.io/zone": draw(st.sampled_from(ZONES))}
    if draw(st.booleans()):
        labels["disk"] = draw(st.sampled_from(("ssd", "hdd")))
    if draw(st.booleans()):
        labels["cores"] = str(draw(st.sampled_from((16, 32, 64, 128))))
    return labels


_REQUIREMENTS = st.one_of(
    st.builds(
        NodeSelectorRequirement,
        key=st.just("topology.kubernetes.io/zone"),
        operator=st.sampled_from(("In", "NotIn")),
        values=st.lists(st.sampled_from(ZONES), min_size=1, max_size=2, unique=True).map(tuple),
    ),
    st.builds(
        NodeSelectorRequirement,
        key=st.sampled_from(("disk", "cores")),
        operator=st.sampled_from(("Exists", "DoesNotExist")),
    ),
    st.builds(
        NodeSelectorRequirement,
        key=st.just("cores"),
        operator=st.sampled_from(("Gt", "Lt")),
        values=st.sampled_from(("20", "48", "100")).map(lambda v: (v,)),
    ),
)


@st.composite
def placements(draw: st.DrawFn, node_names: Sequence[str] = ()) -> Placement:
    selector: tuple[tuple[str, str], ...] = ()
    if draw(st.integers(0, 3)) == 0:
        selector = (("disk", draw(st.sampled_from(("ssd", "hdd")))),)
    terms: tuple[NodeSelectorTerm, ...] = ()
    if draw(st.integers(0, 2)) == 0:
        fields: tuple[NodeSelectorRequirement, ...] = ()
        if node_names and draw(st.integers(0, 4)) == 0:
            names = draw(st.lists(st.sampled_from(list(node_names)), min_size=1, max_size=3, unique=True))
            fields = (NodeSelectorRequirement("metadata.name", draw(st.sampled_from(("In", "NotIn"))), tuple(names)),)
        terms = tuple(
            NodeSelectorTerm(
                match_expressions=tuple(draw(st.lists(_REQUIREMENTS, min_size=1, max_size=2))), match_fields=fields
            )
            for _ in range(draw(st.integers(1, 2)))
        )
    tolerations = tuple(
        Toleration(key=t.key, operator="Equal", value=t.value, effect=t.effect)
        for t in draw(st.lists(st.sampled_from(TAINTS[:2]), max_size=2, unique=True))
    )
    if draw(st.integers(0, 9)) == 0:
        tolerations += (Toleration(operator="Exists"),)  # tolerates everything, like some system VMs
    return Placement(node_selector=selector, required_terms=terms, tolerations=tolerations)


@st.composite
def node_capacities(draw: st.DrawFn, *, min_size: int = 1, max_size: int = 12) -> list[NodeCapacity]:
    count = draw(st.integers(min_size, max_size))
    return [
        NodeCapacity(
            name=f"worker-{i:02d}",
            labels=draw(node_labels()),
            taints=tuple(draw(st.lists(st.sampled_from(TAINTS), max_size=2, unique=True))),
            free_cpu_millis=draw(st.integers(0, 64).map(lambda c: c * 500)),
            free_memory_bytes=draw(st.integers(0, 128).map(lambda g: g * GI)),
        )
        for i in range(count)
    ]


@st.composite
def candidates(draw: st.DrawFn, *, node_names: Sequence[str] = (), max_size: int = 20) -> list[Candidate]:
    count = draw(st.integers(0, max_size))
    return [
        Candidate(
            key=f"apps/vm-{i:03d}",
            cpu_millis=draw(st.sampled_from((1, 2, 4, 8, 16))) * 1000 + 100,
            memory_bytes=draw(st.sampled_from((1, 2, 4, 8, 16, 32, 64))) * GI + 300 * 2**20,
            placement=draw(placements(node_names)) if draw(st.booleans()) else Placement(),
            priority=draw(st.integers(1, 5)),
        )
        for i in range(count)
    ]


# --- a failover world --------------------------------------------------------------------------


@dataclass
class World:
    """The cluster as a failover sees it; tests mutate it to play KubeVirt's part between plans."""

    nodes: list[NodeView]
    vms: dict[str, VMView]
    vmis: dict[str, VMIView]
    pods: list[PodView]
    fenced: bool
    unfenced_allowed: bool
    unfenced_safe: frozenset[str]
    restart: RestartSpec
    now: datetime = NOW
    counter: int = field(default=0)

    def launcher_pods(self) -> dict[str, list[PodView]]:
        by_uid: dict[str, list[PodView]] = {}
        for pod in self.pods:
            if pod.vmi_uid:
                by_uid.setdefault(pod.vmi_uid, []).append(pod)
        return by_uid


@st.composite
def worlds(draw: st.DrawFn) -> World:
    """A failed node with 1–25 VMs, a few healthy nodes already running VMs, and a fencing outcome."""
    healthy = [
        make_node(
            f"worker-{i:02d}",
            cpu=draw(st.sampled_from((16, 32, 64))) * 1000,
            memory=draw(st.sampled_from((64, 128, 256))) * GI,
            labels=draw(node_labels()),
            taints=tuple(draw(st.lists(st.sampled_from(TAINTS), max_size=1))),
        )
        for i in range(draw(st.integers(1, 6)))
    ]
    failed = make_node(FAILED_NODE, ready="Unknown", ready_for=120, cpu=64_000, memory=512 * GI)
    names = [n.name for n in healthy]
    vms: dict[str, VMView] = {}
    vmis: dict[str, VMIView] = {}
    pods: list[PodView] = []
    for i in range(draw(st.integers(1, 25))):
        vm = make_vm(
            f"vm-{i:02d}",
            priority=draw(st.sampled_from((None, "Disabled", *PRIORITIES))),
            run_strategy=draw(st.sampled_from(("Always", "Always", "Always", "RerunOnFailure", "Halted", "Manual"))),
            vcpus=draw(st.sampled_from((1, 2, 4, 8))),
            memory=draw(st.sampled_from((1, 2, 4, 8, 16, 32))) * GI,
            placement=draw(placements(names)) if draw(st.integers(0, 2)) == 0 else None,
        )
        vms[vm.key] = vm
        uid = f"vmi-{vm.name}-old"
        vmis[vm.key] = make_vmi(vm, uid=uid, node=FAILED_NODE)
        pods.append(make_launcher(vm, vmi_uid=uid, node=FAILED_NODE))
    for node in healthy:  # bystander VMs already using part of each healthy node
        used = draw(st.integers(0, 3))
        for j in range(used):
            bystander = make_vm(f"{node.name}-resident-{j}", vcpus=4, memory=16 * GI)
            pods.append(make_launcher(bystander, vmi_uid=f"vmi-{bystander.name}", node=node.name))
    fenced = draw(st.booleans())
    unfenced_allowed = not fenced and draw(st.booleans())
    safe = frozenset(k for k in vms if draw(st.booleans()))
    restart = restart_spec(
        max_parallel=draw(st.integers(1, 8)),
        tier_ordering=draw(st.sampled_from((TierOrdering.NONE, TierOrdering.WAIT_FOR_READY))),
    )
    return World(
        nodes=[*healthy, failed],
        vms=vms,
        vmis=vmis,
        pods=pods,
        fenced=fenced,
        unfenced_allowed=unfenced_allowed,
        unfenced_safe=safe,
        restart=restart,
    )


def policy_snapshot(
    policy: HAPolicySpec,
    nodes: Sequence[NodeView],
    *,
    status: HAPolicyStatus | None = None,
    vms: Sequence[VMView] = (),
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
    failovers: Sequence[FailoverRecord] = (),
    after: float = 0,
) -> PolicySnapshot:
    """A policy's view of healthy, freshly heard-from `nodes`, `after` seconds of wall clock past NOW."""
    return PolicySnapshot(
        name="production",
        generation=1,
        policy=policy,
        invalid_message=None,
        status=status or HAPolicyStatus(),
        nodes=nodes,
        leases={n.name: make_lease(n.name) for n in nodes},
        admission=assess_admission(
            AdmissionSnapshot(
                policy=policy,
                vms=vms,
                namespace_labels=namespace_labels or {},
                vmis={},
                pods=[],
                launcher_pods={},
                nodes=nodes,
                healthy=[n.name for n in nodes],
            )
        ),
        failovers=failovers,
        now=NOW + timedelta(seconds=after),
        monotonic=MONOTONIC_NOW,  # the nodes stay freshly heard from; only the wall clock moves
        sightings={n.name: sightings() for n in nodes},
        caches_synced=True,
    )


def fencing_snapshot(
    *,
    name: str,
    uid: str,
    spec: NodeFailoverSpec,
    status: NodeFailoverStatus,
    policy: HAPolicySpec,
    nodes: Sequence[NodeView],
    leases: Mapping[str, LeaseView],
    seen: Mapping[str, NodeSightings],
    pods_on_node: Sequence[PodView] = (),
    recorded_storm: StormState | None = None,
) -> IncidentSnapshot:
    """An incident on `nodes[0]` with no workload: what the fencing and storm steps see."""
    failed = nodes[0]
    return IncidentSnapshot(
        name=name,
        uid=uid,
        spec=spec,
        status=status,
        policy=policy,
        node=failed,
        lease=leases.get(failed.name),
        all_nodes=list(nodes),
        leases=leases,
        recorded_storm=recorded_storm or StormState.restored(),
        remediation=None,
        pods_on_node=list(pods_on_node),
        vms={},
        vmis={},
        launcher_pods={},
        nodes=[],
        unfenced_safe=(),
        now=NOW,
        monotonic=MONOTONIC_NOW,
        seen=seen[failed.name],
        sightings=seen,
        caches_synced=True,
    )
