"""What would kvha do if these nodes failed now? The operator's own steps, replayed on one read of
the cluster, so that the answer is the one a failover would act on.

Nothing here is a second implementation: protection (`kvha.protection`), the storm guard, the
incident's entries and plan (`kvha.planner`: placement, priority tiers, maxParallel) and admission
control are called as the operator calls them. What the replay adds is the passage of time: each
plan's restarts are taken to succeed on their planned nodes (their old launcher pods gone, new ones
requesting the same there), and the next plan is made on that cluster, so the plans come in
waves as the failover would issue them. Assumptions, each shown to the user:

* fencing succeeds at once (or, with strategy None, is skipped as the policy allows);
* every restarted VM becomes Ready, so the next tier starts without its tierTimeout;
* with several failed nodes their incidents plan one after the other within each wave (the
  operator runs them side by side, each seeing the pods the others' restarts have bound).

Nodes other than the failed ones are judged from this one read: detection's thresholds cannot
have passed, so a node with a failing condition now counts as unhealthy for the storm guard and
takes no VM, as it would once its thresholds pass.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from kvha.admission import ProtectedVM, protected_demand, worst_hosts
from kvha.detection import (
    Health,
    Instant,
    NodeSightings,
    Sighting,
    StormState,
    Verdict,
    assess_watched,
    recorded_storm,
    storm_guard,
)
from kvha.models.base import Priority
from kvha.models.hapolicy import FencingStrategy, HAPolicySpec, HAPolicyStatus
from kvha.models.nodefailover import FailoverVM, VMState
from kvha.models.resources import Resources
from kvha.models.views import ClaimView, LeaseView, NodeView, PodView, Taint, VMIView, VMView
from kvha.placement import (
    PodTopology,
    launcher_extended_requests,
    launcher_placement,
    launcher_requests,
    node_capacities,
)
from kvha.planner import FailoverSnapshot, initial_entries, plan_failover
from kvha.protection import Protection, classify, selects, unfenced_safe
from kvha.reconcile.admission import protected_capacity, running_protected

# What the node lifecycle controller puts on a node it no longer hears from.
UNREACHABLE_TAINTS = (
    Taint("node.kubernetes.io/unreachable", "NoSchedule"),
    Taint("node.kubernetes.io/unreachable", "NoExecute"),
)


@dataclass(frozen=True)
class ClusterRead:
    """One read of everything a policy's evaluation and an incident's plan look at."""

    nodes: Sequence[NodeView]
    leases: Mapping[str, LeaseView]
    vms: Sequence[VMView]
    namespace_labels: Mapping[str, Mapping[str, str]]
    vmis: Mapping[str, VMIView]
    """By the VM's `namespace/name`."""
    pods: Sequence[PodView]
    claims: Mapping[tuple[str, str], ClaimView]
    now: datetime


@dataclass(frozen=True, slots=True)
class PlannedVM:
    """One VM of a failed node, as the failover would leave it."""

    namespace: str
    name: str
    priority: Priority
    from_node: str
    state: VMState
    planned_node: str | None = None
    wave: int | None = None
    """1 for the first restarts issued, 2 for those issued once the first ran, …"""
    reason: str | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class WorstHost:
    """A host admission control assumes to fail first, and why: the protected demand on it."""

    name: str
    protected_vms: int
    memory_bytes: int
    cpu_millis: int


@dataclass(frozen=True)
class WhatIf:
    policy_name: str
    failed: tuple[str, ...]
    unwatched: tuple[str, ...]
    """Failed nodes the policy does not watch: kvha would open no incident for them."""
    vms: tuple[PlannedVM, ...]
    storm: StormState
    fencing: str
    """How fencing is assumed to go, in words."""
    waves: int
    capacity_now: int
    capacity_after: int
    """Host failures the protected VMs could still absorb once the failover is over."""


def what_if(
    *, policy_name: str, policy: HAPolicySpec, status: HAPolicyStatus, read: ClusterRead, failed: Sequence[str]
) -> WhatIf:
    """The failover of `failed` under `policy`, wave by wave, from one read of the cluster."""
    verdicts = _verdicts(policy, read)
    lost = set(failed)
    watched_failed = tuple(n for n in failed if n in verdicts)
    healthy = [
        n for n in read.nodes if n.name in verdicts and n.name not in lost and verdicts[n.name].health is Health.HEALTHY
    ]
    unhealthy = len(verdicts) - len(healthy)
    storm = storm_guard(
        unhealthy_nodes=unhealthy,
        watched_nodes=len(verdicts),
        spec=policy.storm_guard,
        previous=recorded_storm(status),
        now=read.now,
    )
    selected = {vm.key: vm for vm in read.vms if selects(policy, vm, read.namespace_labels.get(vm.namespace, {}))}
    protections = _protections(policy, selected.values())
    protected = [vm for vm in selected.values() if protections[vm.key].protected]
    every_healthy = [n for n in read.nodes if n.name in verdicts and verdicts[n.name].health is Health.HEALTHY]
    capacity_now = protected_capacity(
        policy=policy,
        protected=running_protected(
            protected=protected, protections=protections, vmis=read.vmis, launcher_pods=_launchers(read.pods)
        ),
        nodes=node_capacities(nodes=every_healthy, pods=read.pods, exclude=set()),
        topology=PodTopology(nodes=read.nodes, pods=read.pods, namespace_labels=read.namespace_labels),
    )
    replay = _Replay(policy=policy, read=read, failed=watched_failed, healthy=healthy, vms=selected)
    # The storm's message is the plan's own (`WhatIf.storm`); each VM just says what holds it.
    rows = replay.held("held by the storm guard") if storm.blocks_action else replay.run()
    capacity_after = protected_capacity(
        policy=policy,
        protected=running_protected(
            protected=protected, protections=protections, vmis=replay.vmis, launcher_pods=_launchers(replay.pods)
        ),
        nodes=node_capacities(nodes=healthy, pods=replay.pods, exclude=lost),
        topology=replay.topology(),
    )
    return WhatIf(
        policy_name=policy_name,
        failed=tuple(failed),
        unwatched=tuple(n for n in failed if n not in verdicts),
        vms=rows,
        storm=storm,
        fencing=_fencing_words(policy),
        waves=max((r.wave or 0 for r in rows), default=0),
        capacity_now=capacity_now,
        capacity_after=capacity_after,
    )


def worst_case_hosts(*, policy: HAPolicySpec, read: ClusterRead, count: int) -> list[WorstHost]:
    """The `count` hosts whose loss admission control counts as the worst case, with their demand."""
    verdicts = _verdicts(policy, read)
    healthy = [n for n in read.nodes if n.name in verdicts and verdicts[n.name].health is Health.HEALTHY]
    selected = [vm for vm in read.vms if selects(policy, vm, read.namespace_labels.get(vm.namespace, {}))]
    protections = _protections(policy, selected)
    running: list[ProtectedVM] = running_protected(
        protected=[vm for vm in selected if protections[vm.key].protected],
        protections=protections,
        vmis=read.vmis,
        launcher_pods=_launchers(read.pods),
    )
    nodes = node_capacities(nodes=healthy, pods=read.pods, exclude=set())
    demand = protected_demand(running)
    return [
        WorstHost(
            name=host,
            protected_vms=sum(1 for p in running if p.node == host),
            memory_bytes=demand.get(host, Resources.ZERO).memory_bytes,
            cpu_millis=demand.get(host, Resources.ZERO).cpu_millis,
        )
        for host in worst_hosts(protected=running, nodes=nodes, count=count)
    ]


class _Replay:
    """The incidents of the failed nodes, planned again and again on a cluster where each plan's
    restarts have taken effect, until a plan restarts nothing more."""

    def __init__(
        self,
        *,
        policy: HAPolicySpec,
        read: ClusterRead,
        failed: Sequence[str],
        healthy: Sequence[NodeView],
        vms: Mapping[str, VMView],
    ) -> None:
        self.policy, self.read, self.failed, self.healthy, self.vms = policy, read, failed, healthy, vms
        self.vmis: dict[str, VMIView] = dict(read.vmis)
        self.pods: list[PodView] = list(read.pods)
        self.entries: dict[str, list[FailoverVM]] = {
            node: initial_entries(
                vms=vms.values(), vmis=read.vmis, failed_node=node, default_priority=policy.restart.default_priority
            )
            for node in failed
        }
        self.waves: dict[str, int] = {}
        self.safe = {key for key, vm in vms.items() if unfenced_safe(vm, read.claims)}
        # Fencing as `kvha.fencing.restart_clearance` reports it once confirmed.
        unfenced = policy.fencing.strategy is FencingStrategy.NONE
        self.fenced, self.unfenced_allowed = not unfenced, unfenced and policy.fencing.allow_unfenced_restart

    def topology(self) -> PodTopology:
        lost = set(self.failed)
        nodes = [replace(n, taints=(*n.taints, *UNREACHABLE_TAINTS)) if n.name in lost else n for n in self.read.nodes]
        return PodTopology(nodes=nodes, pods=self.pods, namespace_labels=self.read.namespace_labels)

    def run(self) -> tuple[PlannedVM, ...]:
        wave = 0
        acted = True
        while acted:
            wave += 1
            acted = False
            for node in self.failed:
                plan = plan_failover(
                    FailoverSnapshot(
                        failed_node=node,
                        entries=self.entries[node],
                        vms=self.vms,
                        vmis=self.vmis,
                        launcher_pods=_launchers(self.pods),
                        nodes=node_capacities(nodes=self.healthy, pods=self.pods, exclude=set(self.failed)),
                        fenced=self.fenced,
                        unfenced_allowed=self.unfenced_allowed,
                        unfenced_safe=self.safe,
                        restart=self.policy.restart,
                        now=self.read.now,
                        topology=self.topology(),
                    )
                )
                self.entries[node] = list(plan.entries)
                planned = {e.key: e.planned_node for e in plan.entries}
                for action in plan.actions:
                    target = planned.get(action.key)
                    if target is not None:
                        self._restarted(action.key, target)
                        self.waves.setdefault(action.key, wave)
                        acted = True
        return self._rows(self.entries)

    def held(self, reason: str) -> tuple[PlannedVM, ...]:
        return self._rows(
            {node: [replace_entry(e, reason=reason) for e in entries] for node, entries in self.entries.items()}
        )

    def _restarted(self, key: str, node: str) -> None:
        """The restart took effect: the stuck instance and its launcher are gone, a new instance
        runs on the planned node and its launcher requests there what the old one did."""
        vm, old = self.vms[key], self.vmis.get(key)
        old_pods = [p for p in self.pods if old is not None and p.vmi_uid == old.uid]
        old_pod = next((p for p in old_pods if not p.terminal), None)
        requests = launcher_requests(vm, old_pod)
        uid = f"what-if-{vm.uid or key}"
        self.pods = [p for p in self.pods if p not in old_pods]
        self.pods.append(
            PodView(
                namespace=vm.namespace,
                name=f"virt-launcher-{vm.name}-what-if",
                node_name=node,
                phase="Running",
                cpu_millis=requests.cpu_millis,
                memory_bytes=requests.memory_bytes,
                vmi_uid=uid,
                placement=launcher_placement(vm, old_pod),
                scheduling=vm.scheduling,
                extended_requests=launcher_extended_requests(vm, old_pod),
            )
        )
        self.vmis[key] = VMIView(
            namespace=vm.namespace, name=vm.name, uid=uid, node_name=node, phase="Running", ready=True
        )

    def _rows(self, entries: Mapping[str, Iterable[FailoverVM]]) -> tuple[PlannedVM, ...]:
        rows = [
            PlannedVM(
                namespace=e.namespace,
                name=e.name,
                priority=e.priority,
                from_node=e.from_node,
                state=e.state,
                planned_node=e.node or e.planned_node,
                wave=self.waves.get(e.key),
                reason=e.reason,
            )
            for node in self.failed
            for e in entries[node]
        ]
        return tuple(sorted(rows, key=lambda r: (r.wave or 1_000_000, -r.priority, r.key)))


def replace_entry(entry: FailoverVM, *, reason: str) -> FailoverVM:
    return entry.replace(reason=reason)


def _protections(policy: HAPolicySpec, vms: Iterable[VMView]) -> dict[str, Protection]:
    default = policy.restart.default_priority
    return {vm.key: classify(vm, default_priority=default) for vm in vms}


def _launchers(pods: Iterable[PodView]) -> dict[str, list[PodView]]:
    by_uid: dict[str, list[PodView]] = {}
    for pod in pods:
        if pod.vmi_uid:
            by_uid.setdefault(pod.vmi_uid, []).append(pod)
    return by_uid


def _verdicts(policy: HAPolicySpec, read: ClusterRead) -> dict[str, Verdict]:
    """Detection's verdict on every watched node, from this one read."""
    instant = Instant(monotonic=0.0, wall=read.now)
    return assess_watched(
        nodes=read.nodes, leases=read.leases, sightings=_seen_now(read.nodes, instant), policy=policy, now=instant
    )


def _seen_now(nodes: Collection[NodeView], now: Instant) -> dict[str, NodeSightings]:
    """Every signal first seen now: from one read, no silence has lasted any time yet."""
    seen = Sighting.of(now)
    return {
        n.name: NodeSightings(
            lease=seen,
            kubevirt_heartbeat=seen,
            status_heartbeat=seen,
            conditions={c.type: seen for c in n.conditions},
        )
        for n in nodes
    }


def _fencing_words(policy: HAPolicySpec) -> str:
    fencing = policy.fencing
    if fencing.strategy is FencingStrategy.NONE:
        return "no fencing (strategy None): only VMs safe to run twice would restart"
    if fencing.strategy is FencingStrategy.REMEDIATION:
        return "assumes the remediation reports Succeeded (the node is powered off) at once"
    return f"assumes the node is confirmed off at once (OutOfServiceTaint, confirmation {fencing.confirmation.value})"
