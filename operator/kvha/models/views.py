"""Read-only views of the Kubernetes and KubeVirt objects kvha reads.

There is no maintained KubeVirt Python client on PyPI, so kvha reads VirtualMachines and
VirtualMachineInstances as plain dicts from the custom-objects API and parses only the fields it
needs here. Parsing is tolerant (missing fields get safe defaults) because a crash on an unexpected
object would stop failover for every other VM.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kvha.constants import (
    FENCE_CONFIRMED_ANNOTATION,
    KUBEVIRT_CREATED_BY_LABEL,
    KUBEVIRT_HEARTBEAT_ANNOTATION,
    KUBEVIRT_SCHEDULABLE_LABEL,
    MIRROR_POD_ANNOTATION,
    VMI_KIND,
)
from kvha.models.quantity import QuantityError, cpu_millis, memory_bytes
from kvha.models.timeutil import parse_time

Obj = Mapping[str, Any]


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _dict(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    effect: str
    value: str = ""
    time_added: datetime | None = None
    """When whoever applied it says it was applied (medik8s remediators set it): what tells a fresh
    out-of-service taint from one left by an earlier incident."""

    @classmethod
    def from_api(cls, obj: Obj) -> Taint:
        return cls(
            key=str(obj.get("key", "")),
            effect=str(obj.get("effect", "")),
            value=str(obj.get("value") or ""),
            time_added=parse_time(obj.get("timeAdded")),
        )


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    @classmethod
    def from_api(cls, obj: Obj) -> Toleration:
        return cls(
            key=str(obj.get("key") or ""),
            operator=str(obj.get("operator") or "Equal"),
            value=str(obj.get("value") or ""),
            effect=str(obj.get("effect") or ""),
        )

    def tolerates(self, taint: Taint) -> bool:
        """Kubernetes' toleration matching (k8s.io/api/core/v1 ToleratesTaint)."""
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if not self.key and self.operator != "Exists":
            return False
        return self.operator == "Exists" or self.value == taint.value


@dataclass(frozen=True, slots=True)
class NodeCondition:
    type: str
    status: str
    last_transition_time: datetime | None
    last_heartbeat_time: datetime | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    conditions: tuple[NodeCondition, ...] = ()
    allocatable_cpu_millis: int = 0
    allocatable_memory_bytes: int = 0
    unschedulable: bool = False
    kubevirt_heartbeat: datetime | None = None
    fence_confirmed: str | None = None
    allocatable_extended: tuple[tuple[str, int], ...] = ()
    """Extended resources and hugepages (`nvidia.com/gpu`, `hugepages-2Mi`, …) by name."""

    @classmethod
    def from_api(cls, obj: Obj) -> NodeView:
        meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
        annotations = _dict(meta.get("annotations"))
        allocatable = status.get("allocatable") or {}
        conditions = tuple(
            NodeCondition(
                type=str(c.get("type", "")),
                status=str(c.get("status", "Unknown")),
                last_transition_time=parse_time(c.get("lastTransitionTime")),
                last_heartbeat_time=parse_time(c.get("lastHeartbeatTime")),
                reason=str(c.get("reason") or ""),
            )
            for c in _list(status.get("conditions"))
        )
        try:
            cpu, mem = cpu_millis(allocatable.get("cpu")), memory_bytes(allocatable.get("memory"))
        except QuantityError:
            cpu, mem = 0, 0  # an unreadable node offers no capacity rather than crashing the planner
        return cls(
            name=str(meta.get("name", "")),
            labels=_dict(meta.get("labels")),
            taints=tuple(Taint.from_api(t) for t in _list(spec.get("taints"))),
            conditions=conditions,
            allocatable_cpu_millis=cpu,
            allocatable_memory_bytes=mem,
            unschedulable=bool(spec.get("unschedulable", False)),
            kubevirt_heartbeat=parse_time(annotations.get(KUBEVIRT_HEARTBEAT_ANNOTATION)),
            fence_confirmed=annotations.get(FENCE_CONFIRMED_ANNOTATION) or None,
            allocatable_extended=extended_resources(allocatable),
        )

    def condition(self, condition_type: str) -> NodeCondition | None:
        return next((c for c in self.conditions if c.type == condition_type), None)

    def has_taint(self, key: str) -> bool:
        return any(t.key == key for t in self.taints)

    def taint(self, key: str) -> Taint | None:
        return next((t for t in self.taints if t.key == key), None)

    @property
    def kubevirt_schedulable(self) -> bool:
        return self.labels.get(KUBEVIRT_SCHEDULABLE_LABEL) == "true"


@dataclass(frozen=True, slots=True)
class LeaseView:
    node_name: str
    renew_time: datetime | None
    duration_seconds: int | None = None

    @classmethod
    def from_api(cls, obj: Obj) -> LeaseView:
        spec = obj.get("spec") or {}
        return cls(
            node_name=str(_meta(obj).get("name", "")),
            renew_time=parse_time(spec.get("renewTime")),
            duration_seconds=spec.get("leaseDurationSeconds"),
        )


@dataclass(frozen=True, slots=True)
class NodeSelectorRequirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeSelectorTerm:
    """One term of requiredDuringScheduling node affinity; terms are ORed, requirements ANDed."""

    match_expressions: tuple[NodeSelectorRequirement, ...] = ()
    match_fields: tuple[NodeSelectorRequirement, ...] = ()

    @classmethod
    def from_api(cls, obj: Obj) -> NodeSelectorTerm:
        return cls(
            match_expressions=_requirements(obj.get("matchExpressions")),
            match_fields=_requirements(obj.get("matchFields")),
        )


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a pod may run: the scheduling constraints kvha must honour when planning."""

    node_selector: tuple[tuple[str, str], ...] = ()
    required_terms: tuple[NodeSelectorTerm, ...] = ()
    tolerations: tuple[Toleration, ...] = ()

    @classmethod
    def from_pod_spec(cls, spec: Obj) -> Placement:
        affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        ) or {}
        return cls(
            node_selector=tuple(sorted(_dict(spec.get("nodeSelector")).items())),
            required_terms=tuple(NodeSelectorTerm.from_api(t) for t in _list(affinity.get("nodeSelectorTerms"))),
            tolerations=tuple(Toleration.from_api(t) for t in _list(spec.get("tolerations"))),
        )


@dataclass(frozen=True, slots=True)
class PodSelector:
    """A metav1.LabelSelector over pod (or namespace) labels; an empty one selects everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[NodeSelectorRequirement, ...] = ()

    @classmethod
    def from_api(cls, obj: Any) -> PodSelector | None:
        """None for a missing selector, which in pod (anti-)affinity and spread selects no pod."""
        if not isinstance(obj, Mapping):
            return None
        return cls(
            match_labels=tuple(sorted(_dict(obj.get("matchLabels")).items())),
            match_expressions=_requirements(obj.get("matchExpressions")),
        )


def _requirements(items: Any) -> tuple[NodeSelectorRequirement, ...]:
    return tuple(
        NodeSelectorRequirement(
            key=str(r.get("key", "")),
            operator=str(r.get("operator", "In")),
            values=tuple(str(v) for v in _list(r.get("values"))),
        )
        for r in _list(items)
        if isinstance(r, Mapping)
    )


def _selector_with_own_values(obj: Obj, own_labels: Mapping[str, str]) -> PodSelector | None:
    """The term's labelSelector, with the owner's own values of its matchLabelKeys ANDed in (as
    the apiserver merges them when the pod is created)."""
    selector = PodSelector.from_api(obj.get("labelSelector"))
    keys = [str(k) for k in _list(obj.get("matchLabelKeys")) if str(k) in own_labels]
    if selector is None or not keys:
        return selector
    return PodSelector(
        match_labels=tuple(sorted({*selector.match_labels, *((k, own_labels[k]) for k in keys)})),
        match_expressions=selector.match_expressions,
    )


@dataclass(frozen=True, slots=True)
class PodAffinityTerm:
    """One required pod (anti-)affinity term: pods `selector` picks, in `namespaces` (empty: the
    owner's own) or the namespaces `namespace_selector` picks, within one `topology_key` domain."""

    selector: PodSelector | None
    topology_key: str
    namespaces: tuple[str, ...] = ()
    namespace_selector: PodSelector | None = None

    @classmethod
    def from_api(cls, obj: Obj, *, own_labels: Mapping[str, str]) -> PodAffinityTerm:
        return cls(
            selector=_selector_with_own_values(obj, own_labels),
            topology_key=str(obj.get("topologyKey", "")),
            namespaces=tuple(str(n) for n in _list(obj.get("namespaces"))),
            namespace_selector=PodSelector.from_api(obj.get("namespaceSelector")),
        )


@dataclass(frozen=True, slots=True)
class SpreadConstraint:
    """A topology spread constraint with whenUnsatisfiable DoNotSchedule (ScheduleAnyway is a wish)."""

    max_skew: int
    topology_key: str
    selector: PodSelector | None
    min_domains: int = 1
    honor_node_affinity: bool = True
    """nodeAffinityPolicy Honor (the default): only nodes the pod may run on form domains."""
    honor_taints: bool = False
    """nodeTaintsPolicy Honor: nodes with taints the pod does not tolerate form no domain."""

    @classmethod
    def from_api(cls, obj: Obj, *, own_labels: Mapping[str, str]) -> SpreadConstraint:
        return cls(
            max_skew=max(int(obj.get("maxSkew") or 1), 1),
            topology_key=str(obj.get("topologyKey", "")),
            selector=_selector_with_own_values(obj, own_labels),
            min_domains=max(int(obj.get("minDomains") or 1), 1),
            honor_node_affinity=obj.get("nodeAffinityPolicy", "Honor") != "Ignore",
            honor_taints=obj.get("nodeTaintsPolicy", "Ignore") == "Honor",
        )


@dataclass(frozen=True, slots=True)
class PodScheduling:
    """What inter-pod constraints read of a pod: its namespace and labels (which other pods'
    terms select) and its own required pod (anti-)affinity terms and spread constraints."""

    namespace: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    affinity: tuple[PodAffinityTerm, ...] = ()
    anti_affinity: tuple[PodAffinityTerm, ...] = ()
    spread: tuple[SpreadConstraint, ...] = ()

    @property
    def constrained(self) -> bool:
        return bool(self.affinity or self.anti_affinity or self.spread)

    @classmethod
    def from_pod_spec(cls, spec: Obj, *, namespace: str, labels: Mapping[str, str]) -> PodScheduling:
        affinity = spec.get("affinity") or {}

        def required(kind: str) -> tuple[PodAffinityTerm, ...]:
            terms = (affinity.get(kind) or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
            return tuple(PodAffinityTerm.from_api(t, own_labels=labels) for t in _list(terms) if isinstance(t, Mapping))

        return cls(
            namespace=namespace,
            labels=labels,
            affinity=required("podAffinity"),
            anti_affinity=required("podAntiAffinity"),
            spread=tuple(
                SpreadConstraint.from_api(c, own_labels=labels)
                for c in _list(spec.get("topologySpreadConstraints"))
                if isinstance(c, Mapping) and c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule"
            ),
        )


_BASIC_RESOURCES = frozenset({"cpu", "memory", "pods", "ephemeral-storage", "storage"})


def extended_resources(resources: Any) -> tuple[tuple[str, int], ...]:
    """Extended resources and hugepages of a resource list, by name (CPU, memory, pods and
    storage are left out: the scheduler and kvha account for those separately, or not at all)."""
    if not isinstance(resources, Mapping):
        return ()
    found = []
    for name, value in resources.items():
        if name in _BASIC_RESOURCES:
            continue
        try:
            found.append((str(name), memory_bytes(value)))
        except QuantityError:
            continue
    return tuple(sorted(found))


def _add_resources(*lists: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
    total: dict[str, int] = {}
    for resources in lists:
        for name, amount in resources:
            total[name] = total.get(name, 0) + amount
    return tuple(sorted(total.items()))


def guest_extended_requests(domain: Obj) -> tuple[tuple[str, int], ...]:
    """What virt-controller adds to the launcher's requests besides CPU and memory: the guest's
    extended resource requests, one device-plugin resource per GPU or host device, and its memory
    as hugepages of the configured size."""
    requests = extended_resources((domain.get("resources") or {}).get("requests"))
    devices = domain.get("devices") or {}
    plugged = tuple(
        (str(d["deviceName"]), 1)
        for d in [*_list(devices.get("gpus")), *_list(devices.get("hostDevices"))]
        if isinstance(d, Mapping) and d.get("deviceName")
    )
    memory = domain.get("memory") or {}
    page_size = (memory.get("hugepages") or {}).get("pageSize")
    hugepages: tuple[tuple[str, int], ...] = ()
    if page_size:
        guest = memory.get("guest") or ((domain.get("resources") or {}).get("requests") or {}).get("memory")
        try:
            hugepages = ((f"hugepages-{page_size}", memory_bytes(guest)),)
        except QuantityError:
            hugepages = ()
    return _add_resources(requests, plugged, hugepages)


VM_RUN_STRATEGIES = ("Always", "RerunOnFailure", "Manual", "Halted", "Once", "WaitAsReceiver")


@dataclass(frozen=True, slots=True)
class VMView:
    namespace: str
    name: str
    uid: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    run_strategy: str = "Halted"
    cpu_millis: int = 0
    memory_bytes: int = 0
    placement: Placement = Placement()
    claim_names: tuple[str, ...] = ()
    host_disks: bool = False
    host_devices: bool = False
    printable_status: str = ""
    ready: bool = False
    scheduling: PodScheduling = PodScheduling()
    """The launcher pod's labels and inter-pod constraints, from the VMI template."""
    extended_requests: tuple[tuple[str, int], ...] = ()
    """Extended resources and hugepages its launcher pod will request (`guest_extended_requests`)."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def from_api(cls, obj: Obj) -> VMView:
        meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
        template = (spec.get("template") or {}).get("spec") or {}
        template_labels = _dict(((spec.get("template") or {}).get("metadata") or {}).get("labels"))
        domain = template.get("domain") or {}
        devices = domain.get("devices") or {}
        volumes = _list(template.get("volumes"))
        cpu, mem = guest_requests(domain)
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            labels=_dict(meta.get("labels")),
            annotations=_dict(meta.get("annotations")),
            run_strategy=run_strategy(spec),
            cpu_millis=cpu,
            memory_bytes=mem,
            placement=Placement.from_pod_spec(template),
            claim_names=tuple(
                str(name)
                for v in volumes
                for name in (
                    (v.get("persistentVolumeClaim") or {}).get("claimName"),
                    (v.get("dataVolume") or {}).get("name"),
                )
                if name
            ),
            host_disks=any("hostDisk" in v for v in volumes),
            host_devices=bool(_list(devices.get("hostDevices")) or _list(devices.get("gpus"))),
            printable_status=str(status.get("printableStatus") or ""),
            ready=bool(status.get("ready", False)),
            scheduling=PodScheduling.from_pod_spec(
                template,
                namespace=str(meta.get("namespace", "")),
                labels=launcher_labels(template_labels, vm_name=str(meta.get("name", ""))),
            ),
            extended_requests=guest_extended_requests(domain),
        )


def launcher_labels(template_labels: Mapping[str, str], *, vm_name: str) -> dict[str, str]:
    """The labels virt-controller gives a VM's launcher pod: the VMI template's, plus its own."""
    return {**template_labels, "kubevirt.io": "virt-launcher", "vm.kubevirt.io/name": vm_name}


def run_strategy(spec: Obj) -> str:
    """spec.runStrategy, or the legacy spec.running boolean (true → Always, false → Halted)."""
    if spec.get("runStrategy"):
        return str(spec["runStrategy"])
    running = spec.get("running")
    return "Always" if running is True else "Halted"


def guest_requests(domain: Obj) -> tuple[int, int]:
    """The guest's CPU (millicores) and memory (bytes) requests, as virt-controller derives them:
    explicit resources.requests first, else vCPUs (sockets × cores × threads) and guest memory."""
    requests = (domain.get("resources") or {}).get("requests") or {}
    cpu_topology = domain.get("cpu") or {}
    vcpus = 1
    for dimension in ("sockets", "cores", "threads"):
        vcpus *= int(cpu_topology.get(dimension) or 1)
    try:
        cpu = cpu_millis(requests["cpu"]) if "cpu" in requests else vcpus * 1000
        memory = requests.get("memory") or (domain.get("memory") or {}).get("guest")
        mem = memory_bytes(memory)
    except QuantityError:
        return 0, 0
    return cpu, mem


@dataclass(frozen=True, slots=True)
class VMIView:
    namespace: str
    name: str
    uid: str
    node_name: str | None
    phase: str
    ready: bool = False
    deleting: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def from_api(cls, obj: Obj) -> VMIView:
        meta, status = _meta(obj), obj.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in _list(status.get("conditions")))
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            node_name=status.get("nodeName") or None,
            phase=str(status.get("phase") or "Pending"),
            ready=ready,
            deleting=meta.get("deletionTimestamp") is not None,
        )


@dataclass(frozen=True, slots=True)
class PodView:
    namespace: str
    name: str
    node_name: str | None
    phase: str
    cpu_millis: int
    memory_bytes: int
    deleting: bool = False
    vmi_uid: str | None = None
    """The `kubevirt.io/created-by` label: anyone who may create pods in a namespace can write it,
    so it finds candidates and proves nothing (`runs_instance` does)."""
    placement: Placement = Placement()
    scheduling: PodScheduling = PodScheduling()
    extended_requests: tuple[tuple[str, int], ...] = ()
    controller_kind: str | None = None
    controller_uid: str | None = None
    """The ownerReference with controller=true: virt-controller makes the VMI its launcher's controller."""
    mirror: bool = False
    """A static pod's mirror: the kubelet runs it from a file, deleting it in the API stops nothing."""

    @property
    def terminal(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    @property
    def returns_with_node(self) -> bool:
        """A DaemonSet or static pod: nothing evicts it from a node that was down, and it runs again
        as soon as the node is back (virt-handler, CNI, kube-proxy), so waiting for it to leave a
        recovered node would wait forever."""
        return self.mirror or self.controller_kind == "DaemonSet"

    def runs_instance(self, *, namespace: str, vmi_uid: str) -> bool:
        """Whether this pod is provably the launcher of that VMI: in its namespace and controlled
        by it (what virt-controller sets and a tenant's own pod cannot claim for another's VMI)."""
        return (
            self.namespace == namespace
            and self.controller_kind == VMI_KIND
            and self.controller_uid is not None
            and self.controller_uid == vmi_uid
        )

    @classmethod
    def from_api(cls, obj: Obj) -> PodView:
        meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
        cpu, mem = pod_requests(spec)
        labels = _dict(meta.get("labels"))
        namespace = str(meta.get("namespace", ""))
        controller = next(
            (o for o in _list(meta.get("ownerReferences")) if isinstance(o, Mapping) and o.get("controller") is True),
            {},
        )
        return cls(
            namespace=namespace,
            name=str(meta.get("name", "")),
            node_name=spec.get("nodeName") or None,
            phase=str(status.get("phase") or "Pending"),
            cpu_millis=cpu,
            memory_bytes=mem,
            deleting=meta.get("deletionTimestamp") is not None,
            vmi_uid=labels.get(KUBEVIRT_CREATED_BY_LABEL),
            placement=Placement.from_pod_spec(spec),
            scheduling=PodScheduling.from_pod_spec(spec, namespace=namespace, labels=labels),
            extended_requests=pod_extended_requests(spec),
            controller_kind=str(controller["kind"]) if controller.get("kind") else None,
            controller_uid=str(controller["uid"]) if controller.get("uid") else None,
            mirror=MIRROR_POD_ANNOTATION in _dict(meta.get("annotations")),
        )


def pod_requests(spec: Obj) -> tuple[int, int]:
    """Effective requests as the scheduler computes them: the sum over containers, or the largest
    init container if that is bigger, plus pod overhead."""

    def total(containers: Any) -> tuple[list[int], list[int]]:
        cpus, mems = [], []
        for c in _list(containers):
            req = (c.get("resources") or {}).get("requests") or {}
            try:
                cpus.append(cpu_millis(req.get("cpu")))
                mems.append(memory_bytes(req.get("memory")))
            except QuantityError:
                continue
        return cpus, mems

    cpus, mems = total(spec.get("containers"))
    init_cpus, init_mems = total(spec.get("initContainers"))
    overhead = spec.get("overhead") or {}
    try:
        extra_cpu, extra_mem = cpu_millis(overhead.get("cpu")), memory_bytes(overhead.get("memory"))
    except QuantityError:
        extra_cpu, extra_mem = 0, 0
    return (
        max(sum(cpus), max(init_cpus, default=0)) + extra_cpu,
        max(sum(mems), max(init_mems, default=0)) + extra_mem,
    )


def pod_extended_requests(spec: Obj) -> tuple[tuple[str, int], ...]:
    """Extended resources and hugepages the pod requests, summed over its containers (init
    containers run one at a time: the largest of them, if larger)."""

    def of(container: Any) -> tuple[tuple[str, int], ...]:
        return extended_resources(((container or {}).get("resources") or {}).get("requests"))

    running = _add_resources(*(of(c) for c in _list(spec.get("containers"))))
    init = dict(running)
    for container in _list(spec.get("initContainers")):
        for name, amount in of(container):
            init[name] = max(init.get(name, 0), amount)
    return tuple(sorted(init.items()))


@dataclass(frozen=True, slots=True)
class ClaimView:
    """The parts of a PersistentVolumeClaim that decide whether two VM instances could corrupt it."""

    namespace: str
    name: str
    access_modes: tuple[str, ...]
    volume_mode: str

    @property
    def single_writer(self) -> bool:
        return (
            "ReadWriteOnce" in self.access_modes
            or "ReadWriteOncePod" in self.access_modes
            or self.volume_mode == "Block"
        )

    @classmethod
    def from_api(cls, obj: Obj) -> ClaimView:
        meta, spec = _meta(obj), obj.get("spec") or {}
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            access_modes=tuple(str(m) for m in _list(spec.get("accessModes"))),
            volume_mode=str(spec.get("volumeMode") or "Filesystem"),
        )
