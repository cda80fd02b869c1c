"""`kvha plan --fail NODE[,NODE…]`: what kvha would do if those nodes failed now.

The cluster is read once (LIST calls, nothing written) and each policy's failover is replayed by
`kvha.reconcile.what_if` — the operator's own protection, storm guard, placement, priority tiers
and maxParallel. The exit status makes it a check: non-zero when a protected VM of at least
`--require` priority would not run again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from kvha.console.table import format_table
from kvha.models.base import Priority
from kvha.models.hapolicy import HAPolicySpec, HAPolicyStatus
from kvha.models.nodefailover import VMState
from kvha.models.quantity import format_cpu, format_memory
from kvha.reconcile import ClusterRead, PlannedVM, WhatIf, WorstHost, what_if, worst_case_hosts

READ_ONLY = "read-only: kvha plan lists objects and writes nothing to the cluster"
EXIT_REQUIREMENT_MISSED = 1


@dataclass(frozen=True)
class PolicyRecord:
    name: str
    spec: HAPolicySpec
    status: HAPolicyStatus


@dataclass(frozen=True)
class PlanReport:
    server: str
    plans: tuple[WhatIf, ...]
    worst: tuple[WorstHost, ...] = ()
    require: Priority | None = None

    def short_of(self) -> list[PlannedVM]:
        """Protected VMs of at least the required priority that would not run again."""
        if self.require is None:
            return []
        return [
            vm
            for plan in self.plans
            for vm in plan.vms
            if vm.state not in (VMState.RUNNING, VMState.SKIPPED) and vm.priority >= self.require
        ]


def make_report(
    *,
    server: str,
    policies: Sequence[PolicyRecord],
    read: ClusterRead,
    failed: Sequence[str],
    fail_worst: int = 0,
    require: Priority | None = None,
) -> PlanReport:
    """The plan of every policy for `failed`, or for the `fail_worst` hosts admission control
    counts as the worst case (of the first policy: they are a property of what it protects)."""
    worst: list[WorstHost] = []
    if fail_worst and policies:
        worst = worst_case_hosts(policy=policies[0].spec, read=read, count=fail_worst)
        failed = [*failed, *(w.name for w in worst if w.name not in failed)]
    plans = tuple(
        what_if(policy_name=p.name, policy=p.spec, status=p.status, read=read, failed=failed) for p in policies
    )
    return PlanReport(server=server, plans=plans, worst=tuple(worst), require=require)


def _outcome(vm: PlannedVM) -> str:
    if vm.state is VMState.RUNNING:
        return "Restarted"
    return f"{vm.state.value}: {vm.reason}" if vm.reason else vm.state.value


def render_text(report: PlanReport) -> str:
    lines = [f"# {READ_ONLY} ({report.server})"]
    if report.worst:
        lines.append("Hosts chosen by --fail-worst (admission control's worst case: most protected memory, then CPU):")
        lines += [
            f"  {w.name}: {w.protected_vms} protected VMs requesting {format_memory(w.memory_bytes)} memory "
            f"and {format_cpu(w.cpu_millis)} CPU"
            for w in report.worst
        ]
    for plan in report.plans:
        lines += ["", f"HAPolicy {plan.policy_name}: if {', '.join(plan.failed)} failed now"]
        if plan.unwatched:
            lines.append(f"  not watched by this policy (no incident would open): {', '.join(plan.unwatched)}")
        lines.append(f"  fencing: {plan.fencing}")
        lines.append(f"  storm guard: {plan.storm.message}")
        lines.append("")
        rows = [
            [vm.key, vm.priority.label, vm.from_node, vm.planned_node or "-", str(vm.wave or "-"), _outcome(vm)]
            for vm in plan.vms
        ]
        lines += format_table(["VM", "PRIORITY", "FROM", "PLANNED", "WAVE", "OUTCOME"], rows)
        lines += ["", f"  {_summary(plan)}"]
        lines.append(
            f"  failover capacity: the protected VMs survive {plan.capacity_now} host failure(s) now, "
            f"{plan.capacity_after} after this failover"
        )
    missing = report.short_of()
    if report.require is not None:
        verdict = (
            f"FAIL: {len(missing)} protected VM(s) of priority {report.require.label} or higher would not run again"
            if missing
            else f"OK: every protected VM of priority {report.require.label} or higher would run again"
        )
        lines += ["", verdict]
    return "\n".join(lines)


def _summary(plan: WhatIf) -> str:
    counts = {state: sum(1 for vm in plan.vms if vm.state is state) for state in VMState}
    parts = [f"{len(plan.vms)} VMs: {counts[VMState.RUNNING]} restarted in {plan.waves} wave(s)"]
    if counts[VMState.WAITING_FOR_CAPACITY]:
        parts.append(f"{counts[VMState.WAITING_FOR_CAPACITY]} waiting for capacity")
    if counts[VMState.SKIPPED]:
        parts.append(f"{counts[VMState.SKIPPED]} skipped")
    if counts[VMState.PENDING]:
        parts.append(f"{counts[VMState.PENDING]} not restarted")
    return ", ".join(parts)


def as_data(report: PlanReport) -> dict[str, Any]:
    """The report for `-o json|yaml`: stable camelCase keys, states as in a NodeFailover."""
    return {
        "readOnly": True,
        "note": READ_ONLY,
        "server": report.server,
        "worstHosts": [
            {"name": w.name, "protectedVms": w.protected_vms, "memoryBytes": w.memory_bytes, "cpuMillis": w.cpu_millis}
            for w in report.worst
        ],
        "policies": [
            {
                "policy": plan.policy_name,
                "failedNodes": list(plan.failed),
                "unwatchedNodes": list(plan.unwatched),
                "fencing": plan.fencing,
                "stormGuard": {"blocksAction": plan.storm.blocks_action, "message": plan.storm.message},
                "waves": plan.waves,
                "failoverCapacityNow": plan.capacity_now,
                "failoverCapacityAfter": plan.capacity_after,
                "vms": [
                    {
                        "namespace": vm.namespace,
                        "name": vm.name,
                        "priority": vm.priority.label,
                        "fromNode": vm.from_node,
                        "plannedNode": vm.planned_node,
                        "wave": vm.wave,
                        "state": vm.state.value,
                        "reason": vm.reason,
                    }
                    for vm in plan.vms
                ],
            }
            for plan in report.plans
        ],
        "requirement": None
        if report.require is None
        else {"priority": report.require.label, "met": not report.short_of()},
    }


def render(report: PlanReport, output: str) -> str:
    if output == "json":
        return json.dumps(as_data(report), indent=2)
    if output == "yaml":
        return yaml.safe_dump(as_data(report), sort_keys=False).rstrip()
    return render_text(report)


def exit_status(report: PlanReport) -> int:
    return EXIT_REQUIREMENT_MISSED if report.short_of() else 0
