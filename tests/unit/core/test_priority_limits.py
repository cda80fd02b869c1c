"""A namespace cannot take every other tenant's capacity and restart slots by annotating its VMs
Highest: the policy's `restart.priorityLimits` bound what a namespace may claim, enforced where
priorities are read (protection, the planner) and shown in the policy's status."""

from __future__ import annotations

from dataclasses import replace

from core.strategies import FAILED_NODE, make_node, make_vm, make_vmi, policy_snapshot
from core.test_failover import snapshot
from kvha.models.base import Priority
from kvha.models.hapolicy import HAPolicySpec
from kvha.models.views import VMView
from kvha.planner import initial_entries, plan_failover
from kvha.protection import classify, priority_limit
from kvha.reconcile import evaluate_policy

POLICY = HAPolicySpec.model_validate(
    {
        "restart": {
            "maxParallel": 1,
            "priorityLimits": [
                {"namespaceSelector": {"matchLabels": {"tier": "platform"}}, "maxPriority": "Highest"},
                {"namespaceSelector": {}, "maxPriority": "Medium"},
            ],
        }
    }
)
NAMESPACES = {"tenant-a": {"team": "a"}, "platform": {"tier": "platform"}}
GREEDY = make_vm("greedy", namespace="tenant-a", priority="Highest")
MODEST = make_vm("modest", namespace="tenant-a", priority="Low")
CORE_DB = make_vm("core-db", namespace="platform", priority="High")


def limit(vm: VMView) -> Priority | None:
    return priority_limit(POLICY.restart.priority_limits, NAMESPACES[vm.namespace])


def test_the_first_matching_limit_caps_what_a_vm_claims() -> None:
    assert classify(GREEDY, default_priority=Priority.MEDIUM, limit=limit(GREEDY)).priority is Priority.MEDIUM
    assert classify(GREEDY, default_priority=Priority.MEDIUM, limit=limit(GREEDY)).claimed is Priority.HIGHEST
    assert classify(MODEST, default_priority=Priority.MEDIUM, limit=limit(MODEST)).claimed is None
    assert classify(CORE_DB, default_priority=Priority.MEDIUM, limit=limit(CORE_DB)).priority is Priority.HIGH
    disabled = make_vm("off", namespace="tenant-a", priority="Disabled")
    assert not classify(disabled, default_priority=Priority.MEDIUM, limit=limit(disabled)).protected


def test_a_capped_vm_restarts_after_the_vms_it_tried_to_overtake() -> None:
    vms = [GREEDY, CORE_DB]
    vmis = {vm.key: make_vmi(vm, uid=f"old-{vm.name}", node=FAILED_NODE) for vm in vms}
    entries = initial_entries(
        vms=vms,
        vmis=vmis,
        failed_node=FAILED_NODE,
        default_priority=Priority.MEDIUM,
        priority_limits=POLICY.restart.priority_limits,
        namespace_labels=NAMESPACES,
    )
    assert {e.name: e.priority for e in entries} == {"greedy": Priority.MEDIUM, "core-db": Priority.HIGH}
    plan = plan_failover(replace(snapshot(vms, entries=entries, restart=POLICY.restart), namespace_labels=NAMESPACES))
    assert [a.name for a in plan.actions] == ["core-db"], "the one restart slot goes to the uncapped High VM"
    assert {e.name: e.priority for e in plan.entries}["greedy"] is Priority.MEDIUM, "the cap holds on every plan"


def test_the_policy_status_counts_the_capped_vms() -> None:
    nodes = [make_node(f"w{i}") for i in range(3)]
    step = evaluate_policy(policy_snapshot(POLICY, nodes, vms=[GREEDY, MODEST, CORE_DB], namespace_labels=NAMESPACES))
    assert step.status.priority_capped_vms == 1
    ready = next(c for c in step.status.conditions if c.type == "Ready")
    assert "1 of them claim a priority above restart.priorityLimits" in ready.message
