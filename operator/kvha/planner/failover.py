"""Which of a failed node's VMs restart now, where they will fit, and in what order.

`plan_failover` is a pure function of a snapshot: the incident's recorded VM entries, the VMs, their
current instances and launcher pods, and the healthy nodes' free capacity. It returns the updated
entries and the restarts to perform. The rules, in the order they apply:

* Safety: a VM is restarted only from a fenced node, or, with strategy None and
  allowUnfencedRestart, only if it is safe to run twice (`kvha.protection.unfenced_safe`). Only the
  stuck instance recorded when the incident opened (`old_vmi_uid`, on the failed node) is ever
  removed, so a VM that KubeVirt already started elsewhere, or that runs again on the recovered
  node, is never touched.
* Crash safety: the handler writes the returned entries (Restarting, `attempts`, `last_attempt_at`)
  *before* it acts. A Restarting entry whose old instance is still there re-issues its restart
  only `RETRY_INTERVAL` seconds after `last_attempt_at`, so planning again on an unchanged snapshot
  at the same moment yields no new actions. After `maxAttempts` attempts that did not take effect
  the entry is Failed, with the reason, so that the incident can complete.
* Capacity: VMs are placed highest priority first, then largest, on the node with most free
  memory they may run on (`kvha.placement.place`); capacity is set aside for restarts whose new
  pod is not bound yet. A VM that fits nowhere waits (WaitingForCapacity, with the reason) and is
  retried on every plan, ahead of lower priorities.
* Rate: at most `maxParallel` entries hold a restart slot at once. A Restarting entry holds one
  while its stuck instance is still there, and afterwards until its new instance runs or
  `tierTimeout` has passed since its last attempt: a replacement that never becomes ready (image
  pull, missing secret, crash loop) must not keep every other VM waiting.
* Order: with tierOrdering WaitForReady a priority tier starts only once every higher tier is
  settled (Running, Skipped, Failed), waiting for capacity, or stalled (its restart had to be
  re-issued), or `tierTimeout` has passed since that higher tier's first restart.

`restarted_at` records when a VM's restart began, and a tier's clock starts at the earliest one on
record. A VM whose stuck instance cannot be removed keeps its restart slot (the concurrency limit
is a promise) and is retried, with a Warning Event, until it runs out of attempts.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from kvha.constants import (
    REASON_VM_RESTART_FAILED,
    REASON_VM_RESTARTING,
    REASON_VM_RESTORED,
    REASON_VM_UNPROTECTED,
    REASON_VM_WAITING,
    UNSAFE_RESTART_ANNOTATION,
)
from kvha.models.base import Priority
from kvha.models.durations import format_seconds, seconds
from kvha.models.events import EventNote
from kvha.models.hapolicy import PriorityLimit, RestartSpec, TierOrdering
from kvha.models.nodefailover import FailoverVM, VMState
from kvha.models.resources import Resources
from kvha.models.timeutil import format_time
from kvha.models.views import PodView, VMIView, VMView
from kvha.placement import (
    Candidate,
    NodeCapacity,
    PodTopology,
    launcher_extended_requests,
    launcher_placement,
    launcher_requests,
    place,
    placement_order,
    reserve,
)
from kvha.protection import classify, priority_limit

RETRY_INTERVAL = 10.0
"""Seconds after a restart attempt before it is re-issued if the old instance is still there."""
WAIT_RECHECK = 30.0
"""Seconds between plans while VMs wait (for capacity, a slot, a tier, their new instance)."""

_FINAL_VMI_PHASES = ("Failed", "Succeeded")


@dataclass(frozen=True, slots=True)
class RestartVM:
    """Remove a stuck instance so KubeVirt recreates it elsewhere: actuation force-deletes the
    launcher pod(s); virt-controller then fails the VMI and the VM's run strategy starts a new one."""

    namespace: str
    name: str
    vmi_name: str
    vmi_uid: str
    launcher_pods: tuple[str, ...]
    from_node: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class FailoverSnapshot:
    failed_node: str
    entries: Sequence[FailoverVM]
    vms: Mapping[str, VMView]
    """By `namespace/name`."""
    vmis: Mapping[str, VMIView]
    """Each VM's current instance, by the VM's `namespace/name` (KubeVirt names the VMI like the VM)."""
    launcher_pods: Mapping[str, Collection[PodView]]
    """virt-launcher pods by the uid of the VMI that controls them (`kvha.handlers.indices`); the
    planner deletes only those that `PodView.runs_instance` proves are the stuck instance's."""
    nodes: Sequence[NodeCapacity]
    """Free capacity of healthy nodes (`kvha.placement.node_capacities`, failed and unhealthy excluded)."""
    fenced: bool
    unfenced_allowed: bool
    """`kvha.fencing.restart_clearance(status)` gives both flags."""
    unfenced_safe: Collection[str]
    """Keys of VMs that may run twice at once (`kvha.protection.unfenced_safe`)."""
    restart: RestartSpec
    now: datetime
    topology: PodTopology | None = None
    """Every node and bound pod, for pod (anti-)affinity and topology spread; None checks neither."""
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """By namespace: what `restart.priorityLimits` select on."""


@dataclass(frozen=True, slots=True)
class FailoverPlan:
    entries: tuple[FailoverVM, ...]
    actions: tuple[RestartVM, ...] = ()
    events: tuple[EventNote, ...] = ()
    recheck_after: float | None = None

    @property
    def total(self) -> int:
        return len(self.entries)

    @property
    def restored(self) -> int:
        return sum(1 for e in self.entries if e.state is VMState.RUNNING)

    @property
    def waiting(self) -> int:
        return sum(1 for e in self.entries if e.state is VMState.WAITING_FOR_CAPACITY)

    @property
    def settled(self) -> bool:
        """Every VM is Running, Skipped or Failed: the incident's restarts are complete."""
        return all(e.state.settled for e in self.entries)


def holds_restart_slot(entry: FailoverVM, snapshot: FailoverSnapshot) -> bool:
    """Whether the entry counts against `maxParallel` in this snapshot."""
    return _Planning(snapshot).holds_slot(entry)


def initial_entries(
    *,
    vms: Iterable[VMView],
    vmis: Mapping[str, VMIView],
    failed_node: str,
    default_priority: Priority,
    priority_limits: Sequence[PriorityLimit] = (),
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> list[FailoverVM]:
    """The entries of a new incident: every VM whose instance runs on the failed node, with that
    instance's uid recorded as the one to remove (nothing else of the VM will ever be removed)."""
    labels = namespace_labels or {}
    entries = [
        FailoverVM(
            namespace=vm.namespace,
            name=vm.name,
            priority=classify(
                vm,
                default_priority=default_priority,
                limit=priority_limit(priority_limits, labels.get(vm.namespace, {})),
            ).priority,
            from_node=failed_node,
            old_vmi_uid=vmi.uid,
        )
        for vm in vms
        if (vmi := vmis.get(vm.key)) is not None and vmi.node_name == failed_node
    ]
    return sorted(entries, key=lambda e: (-e.priority, e.key))


def plan_failover(snapshot: FailoverSnapshot) -> FailoverPlan:
    return _Planning(snapshot).run()


def _update(entry: FailoverVM, **changes: Any) -> FailoverVM:
    return entry.replace(**changes)


@dataclass
class _Planning:
    snapshot: FailoverSnapshot
    actions: list[RestartVM] = field(default_factory=list)
    rechecks: list[float] = field(default_factory=list)
    planned: dict[str, str] = field(default_factory=dict)
    """Restarts issued in this plan: key → planned node (for the event wording)."""

    def run(self) -> FailoverPlan:
        snap = self.snapshot
        before = {e.key: e for e in snap.entries}
        entries = [e if e.state.settled else self._observe(e) for e in snap.entries]
        entries = [self._retry(e) if e.state is VMState.RESTARTING else e for e in entries]
        entries = self._restart_candidates(entries)
        if not all(e.state.settled for e in entries):
            self.rechecks.append(WAIT_RECHECK)
        events = tuple(note for e in entries if (note := self._event(before[e.key], e)) is not None)
        return FailoverPlan(
            entries=tuple(entries),
            actions=tuple(self.actions),
            events=events,
            recheck_after=min(self.rechecks) if self.rechecks else None,
        )

    # --- per entry -----------------------------------------------------------------------------

    def _observe(self, entry: FailoverVM) -> FailoverVM:
        """Bring an unsettled entry up to date with what the VM and its instance look like now."""
        snap = self.snapshot
        vm = snap.vms.get(entry.key)
        if vm is None:
            return _update(entry, state=VMState.SKIPPED, reason="the VirtualMachine was deleted", planned_node=None)
        protection = classify(
            vm,
            default_priority=snap.restart.default_priority,
            limit=priority_limit(snap.restart.priority_limits, snap.namespace_labels.get(vm.namespace, {})),
        )
        entry = _update(entry, priority=protection.priority)
        if not protection.protected:
            return _update(entry, state=VMState.SKIPPED, reason=protection.message, planned_node=None)
        vmi = snap.vmis.get(entry.key)
        if vmi is not None and vmi.phase == "Running" and vmi.node_name and not self._is_stuck(entry, vmi):
            return _update(entry, state=VMState.RUNNING, node=vmi.node_name, running_at=snap.now, reason=None)
        if vmi is not None and vmi.uid != entry.old_vmi_uid and vm.printable_status == "ErrorUnschedulable":
            # The replacement exists but the scheduler has no room for its pod: it starts by itself
            # as soon as room appears, and it must not hold a restart slot or a tier meanwhile.
            return _update(
                entry,
                state=VMState.WAITING_FOR_CAPACITY,
                planned_node=None,
                reason="its new instance is waiting for the scheduler: no node has room for its pod",
            )
        if entry.state is VMState.RESTARTING or (vmi is not None and self._is_stuck(entry, vmi)):
            return entry
        # The stuck instance is gone without kvha (KubeVirt or someone else replaced it): follow
        # the replacement like one of ours, so it counts against maxParallel and tier ordering.
        return _update(
            entry,
            state=VMState.RESTARTING,
            restarted_at=snap.now,
            planned_node=None,
            reason="its stuck instance is gone; KubeVirt is starting a new one",
        )

    def _replaced(self, entry: FailoverVM) -> bool:
        """A new instance exists already: there is nothing left for kvha to remove."""
        vmi = self.snapshot.vmis.get(entry.key)
        return vmi is not None and vmi.uid != entry.old_vmi_uid

    def _is_stuck(self, entry: FailoverVM, vmi: VMIView) -> bool:
        return vmi.uid == entry.old_vmi_uid and vmi.node_name == self.snapshot.failed_node

    def _may_restart(self, key: str) -> bool:
        snap = self.snapshot
        return snap.fenced or (snap.unfenced_allowed and key in snap.unfenced_safe)

    def _old_pods(self, entry: FailoverVM) -> Collection[PodView]:
        """The stuck instance's launcher pods, the only pods a restart deletes: in the VM's
        namespace, controlled by the recorded VMI, bound to the failed node. A pod that only carries
        the VMI's `kubevirt.io/created-by` label may be another tenant's, and KubeVirt's migration
        target pods, controlled by the same VMI, run on healthy nodes."""
        uid = entry.old_vmi_uid
        if not uid:
            return ()
        return [
            pod
            for pod in self.snapshot.launcher_pods.get(uid, ())
            if pod.runs_instance(namespace=entry.namespace, vmi_uid=uid) and pod.node_name == self.snapshot.failed_node
        ]

    def _old_pod(self, entry: FailoverVM) -> PodView | None:
        pods = self._old_pods(entry)
        return next((p for p in pods if not p.terminal), next(iter(pods), None))

    def _restart(self, entry: FailoverVM) -> RestartVM:
        return RestartVM(
            namespace=entry.namespace,
            name=entry.name,
            vmi_name=entry.name,
            vmi_uid=entry.old_vmi_uid or "",
            launcher_pods=tuple(sorted(p.name for p in self._old_pods(entry))),
            from_node=self.snapshot.failed_node,
        )

    def _old_instance_remains(self, entry: FailoverVM) -> bool:
        vmi = self.snapshot.vmis.get(entry.key)
        old_vmi_alive = vmi is not None and vmi.uid == entry.old_vmi_uid and vmi.phase not in _FINAL_VMI_PHASES
        return bool(entry.old_vmi_uid) and (old_vmi_alive or any(not p.terminal for p in self._old_pods(entry)))

    def _stalled(self, entry: FailoverVM) -> bool:
        """A restart that had to be re-issued and still has not taken effect."""
        return entry.attempts > 1 and self._old_instance_remains(entry)

    def _last_attempt(self, entry: FailoverVM) -> datetime:
        # Entries written before `lastAttemptAt` existed kept the latest attempt in `restartedAt`.
        return entry.last_attempt_at or entry.restarted_at or self.snapshot.now

    def holds_slot(self, entry: FailoverVM) -> bool:
        """Restarting, and either its stuck instance is still there (kvha's part is not done) or
        its replacement is within `tierTimeout` of the last attempt (it may still be booting)."""
        if entry.state is not VMState.RESTARTING:
            return False
        return self._old_instance_remains(entry) or self.snapshot.now < self._slot_released_at(entry)

    def _slot_released_at(self, entry: FailoverVM) -> datetime:
        return self._last_attempt(entry) + timedelta(seconds=seconds(self.snapshot.restart.tier_timeout))

    def _retry(self, entry: FailoverVM) -> FailoverVM:
        """Re-issue a restart whose effect is not visible yet, at most every RETRY_INTERVAL and at
        most `maxAttempts` times in all; then the VM's restart has failed."""
        snap = self.snapshot
        if not self._old_instance_remains(entry) or not self._may_restart(entry.key):
            return _update(entry, reason=None) if entry.attempts > 1 and entry.reason else entry
        due = self._last_attempt(entry) + timedelta(seconds=RETRY_INTERVAL)
        if snap.now < due:
            self.rechecks.append((due - snap.now).total_seconds())
            return entry
        where = f"its stuck instance {entry.old_vmi_uid} on node {snap.failed_node}"
        if entry.attempts >= snap.restart.max_attempts:
            return _update(
                entry,
                state=VMState.FAILED,
                planned_node=None,
                reason=f"{where} did not go away after {entry.attempts} attempts (maxAttempts)",
            )
        self.actions.append(self._restart(entry))
        self.rechecks.append(RETRY_INTERVAL)
        return _update(
            entry,
            attempts=entry.attempts + 1,
            last_attempt_at=snap.now,
            reason=(
                f"{where} did not go away; the restart is re-issued every {format_seconds(RETRY_INTERVAL)} "
                f"(attempt {entry.attempts + 1} of {snap.restart.max_attempts})"
            ),
        )

    # --- placement, rate and order -------------------------------------------------------------

    def _promised(self, entries: Iterable[FailoverVM]) -> Iterable[tuple[FailoverVM, VMView, str]]:
        """Restarts planned onto a node whose new launcher pod does not count on that node yet."""
        snap = self.snapshot
        for entry in entries:
            vm = snap.vms.get(entry.key)
            if entry.state is not VMState.RESTARTING or entry.planned_node is None or vm is None:
                continue
            vmi = snap.vmis.get(entry.key)
            if vmi is not None and vmi.uid != entry.old_vmi_uid:
                new_pods = snap.launcher_pods.get(vmi.uid, ())
                if any(p.node_name and not p.terminal for p in new_pods):
                    continue  # already in the node's requests
            yield entry, vm, entry.planned_node

    def _reservations(self, entries: Sequence[FailoverVM]) -> dict[str, Resources]:
        """Capacity promised to restarts whose new launcher pod does not count on its node yet."""
        reserved: dict[str, Resources] = {}
        for entry, vm, node in self._promised(entries):
            reserved[node] = reserved.get(node, Resources.ZERO) + launcher_requests(vm, self._old_pod(entry))
        return reserved

    def _topology(self, entries: Sequence[FailoverVM]) -> PodTopology | None:
        """The snapshot's pods less the incident's stuck instances (removed before their
        replacements are scheduled), plus the restarts promised a node but not bound there yet."""
        topology = self.snapshot.topology
        if topology is None:
            return None
        promised = [
            PodView(
                namespace=vm.namespace,
                name=f"promised-{vm.name}",
                node_name=node,
                phase="Pending",
                cpu_millis=0,
                memory_bytes=0,
                scheduling=vm.scheduling,
            )
            for _, vm, node in self._promised(entries)
        ]
        leaving = frozenset(e.old_vmi_uid for e in entries if e.old_vmi_uid and e.state is not VMState.SKIPPED)
        return replace(topology, pods=[*topology.pods, *promised], leaving=topology.leaving | leaving)

    def _restart_candidates(self, entries: list[FailoverVM]) -> list[FailoverVM]:
        snap = self.snapshot
        by_key = {e.key: e for e in entries}
        candidates: list[Candidate] = []
        for entry in entries:
            if entry.state not in (VMState.PENDING, VMState.WAITING_FOR_CAPACITY) or self._replaced(entry):
                continue
            if self._may_restart(entry.key):
                vm, old_pod = snap.vms[entry.key], self._old_pod(entry)
                requests = launcher_requests(vm, old_pod)
                candidates.append(
                    Candidate(
                        key=entry.key,
                        cpu_millis=requests.cpu_millis,
                        memory_bytes=requests.memory_bytes,
                        placement=launcher_placement(vm, old_pod),
                        priority=entry.priority,
                        scheduling=vm.scheduling,
                        extended=launcher_extended_requests(vm, old_pod),
                    )
                )
            elif snap.unfenced_allowed:
                by_key[entry.key] = _update(
                    entry,
                    state=VMState.SKIPPED,
                    reason=(
                        "not restarted without fencing: two running instances could corrupt its "
                        f"single-writer volumes (annotate it {UNSAFE_RESTART_ANNOTATION}=true to accept that)"
                    ),
                )
            else:
                by_key[entry.key] = _update(entry, reason=f"waiting for node {snap.failed_node} to be fenced")
        if candidates:
            nodes = reserve(snap.nodes, self._reservations(entries))
            self._assign(candidates, nodes, by_key)
        return [by_key[e.key] for e in entries]

    def _assign(
        self, candidates: list[Candidate], nodes: Sequence[NodeCapacity], by_key: dict[str, FailoverVM]
    ) -> None:
        snap = self.snapshot
        result = place(candidates=candidates, nodes=nodes, topology=self._topology(list(by_key.values())))
        holders = [e for e in by_key.values() if self.holds_slot(e)]
        slots = snap.restart.max_parallel - len(holders)
        blocked_by: str | None = None
        for priority in sorted({c.priority for c in candidates}, reverse=True):
            blocked_by = blocked_by or self._tier_blocker(by_key.values(), priority)
            for candidate in placement_order([c for c in candidates if c.priority == priority]):
                entry = by_key[candidate.key]
                node = result.assigned.get(candidate.key)
                if blocked_by is not None:
                    by_key[entry.key] = _update(entry, state=VMState.PENDING, planned_node=None, reason=blocked_by)
                elif node is None:
                    by_key[entry.key] = _update(
                        entry,
                        state=VMState.WAITING_FOR_CAPACITY,
                        planned_node=None,
                        reason=result.reasons.get(candidate.key, "no node has room for it"),
                    )
                elif slots <= 0:
                    self._recheck_when_a_slot_frees(holders)
                    by_key[entry.key] = _update(
                        entry,
                        state=VMState.PENDING,
                        planned_node=None,
                        reason=(
                            f"waiting for a restart slot: {snap.restart.max_parallel} VMs (maxParallel) are restarting"
                        ),
                    )
                else:
                    slots -= 1
                    self.rechecks.append(RETRY_INTERVAL)  # look whether the old instance went away
                    self.actions.append(self._restart(entry))
                    self.planned[entry.key] = node
                    by_key[entry.key] = _update(
                        entry,
                        state=VMState.RESTARTING,
                        planned_node=node,
                        restarted_at=snap.now,
                        attempts=entry.attempts + 1,
                        last_attempt_at=snap.now,
                        reason=None,
                    )

    def _recheck_when_a_slot_frees(self, holders: Iterable[FailoverVM]) -> None:
        now = self.snapshot.now
        releases = [self._slot_released_at(e) for e in holders if not self._old_instance_remains(e)]
        if releases:
            self.rechecks.append(max((min(releases) - now).total_seconds(), 0.0))

    def _tier_blocker(self, entries: Iterable[FailoverVM], priority: int) -> str | None:
        """Why the tier at `priority` may not start yet, or None if it may."""
        snap = self.snapshot
        if snap.restart.tier_ordering is TierOrdering.NONE:
            return None
        timeout = timedelta(seconds=seconds(snap.restart.tier_timeout))
        higher: dict[int, list[FailoverVM]] = {}
        for entry in entries:
            if entry.priority > priority:
                higher.setdefault(entry.priority, []).append(entry)
        for tier_priority in sorted(higher, reverse=True):
            tier = higher[tier_priority]
            if all(self._lets_lower_tiers_start(e) for e in tier):
                continue
            started = [e.restarted_at for e in tier if e.restarted_at is not None]
            if started and snap.now >= min(started) + timeout:
                continue
            label = Priority(tier_priority).label
            if started:
                deadline = min(started) + timeout
                self.rechecks.append((deadline - snap.now).total_seconds())
                return (
                    f"waiting for the {label} tier to be running, at most until {format_time(deadline)} "
                    f"(tierTimeout {format_seconds(timeout.total_seconds())})"
                )
            return f"waiting for the {label} tier to be running"
        return None

    def _lets_lower_tiers_start(self, entry: FailoverVM) -> bool:
        """Settled, waiting for capacity, or stalled (its restart is not taking effect): none of these
        is booting, and waiting for them would hold every lower priority hostage."""
        return entry.state.settled or entry.state is VMState.WAITING_FOR_CAPACITY or self._stalled(entry)

    # --- events --------------------------------------------------------------------------------

    def _event(self, before: FailoverVM, after: FailoverVM) -> EventNote | None:
        """An Event when a VM changes state or is restarted again, not on every plan."""
        key, node = after.key, self.snapshot.failed_node
        if key in self.planned:
            message = (
                f"restarting VM {key} from failed node {node}: removing its instance {after.old_vmi_uid}; "
                f"room on node {self.planned[key]}"
            )
            return EventNote(REASON_VM_RESTARTING, message, vm=key)
        if after.state is before.state and after.attempts == before.attempts:
            return None
        if after.state is VMState.RESTARTING and before.state is VMState.RESTARTING:
            message = (
                f"retrying the restart of VM {key} (attempt {after.attempts} of {self.snapshot.restart.max_attempts}): "
                f"instance {after.old_vmi_uid} still on node {node}"
            )
            return EventNote(REASON_VM_RESTARTING, message, "Warning", vm=key)
        took = ""
        if after.restarted_at is not None and after.running_at is not None:
            elapsed = (after.running_at - after.restarted_at).total_seconds()
            took = f", {format_seconds(elapsed)} after its restart"
        notes: dict[VMState, tuple[str, str, Literal["Normal", "Warning"]]] = {
            VMState.RESTARTING: (REASON_VM_RESTARTING, f"VM {key}: {after.reason}", "Normal"),
            VMState.RUNNING: (
                REASON_VM_RESTORED,
                f"VM {key} runs again on node {after.node}{took}",
                "Normal",
            ),
            VMState.WAITING_FOR_CAPACITY: (
                REASON_VM_WAITING,
                f"VM {key} cannot restart yet: {after.reason}",
                "Warning",
            ),
            VMState.SKIPPED: (REASON_VM_UNPROTECTED, f"VM {key} is not restarted: {after.reason}", "Warning"),
            VMState.FAILED: (REASON_VM_RESTART_FAILED, f"VM {key} could not be restarted: {after.reason}", "Warning"),
        }
        note = notes.get(after.state)
        return None if note is None else EventNote(*note, vm=key)
