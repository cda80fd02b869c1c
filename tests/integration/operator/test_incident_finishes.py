"""Every incident finishes (issue 10), on the real control plane.

An incident follows the policy it opened under: deleting the HAPolicy, or narrowing its
`vmSelector`, while the incident restarts VMs neither fails it nor abandons the rest; once the host
is back, nothing of the incident is left (the checks `docs/install.md` gives before an uninstall).
And VMs whose replacements never become ready give their restart slot back after `tierTimeout`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from kvha_testbed.kube import NODES, SELF_NODE_REMEDIATIONS, VMS
from kvha_testbed.scenario import FENCE_CONFIRMED, HAPOLICIES, NODEFAILOVERS, Scenario
from kvha_testbed.sim.vmi_logic import NEVER_BOOTS_LABEL
from kvha_testbed.waiting import wait_for

pytestmark = pytest.mark.integration
Obj = dict[str, Any]
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _leftovers(scene: Scenario, host: str, incident: str) -> list[str]:
    """What docs/install.md's uninstall checks would print about this incident: the out-of-service
    taint and the fence-confirmed annotation on its node, finalizers on its NodeFailover or policy,
    and remediations for its node."""
    found = []
    node = scene.kube.get(NODES.path(name=host))
    if any(t["key"] == OUT_OF_SERVICE for t in node["spec"].get("taints") or []):
        found.append(f"node {host} has the {OUT_OF_SERVICE} taint")
    if FENCE_CONFIRMED in (node["metadata"].get("annotations") or {}):
        found.append(f"node {host} has the {FENCE_CONFIRMED} annotation")
    failover = scene.kube.get_or_none(f"{NODEFAILOVERS}/{incident}")
    if failover is not None and failover["metadata"].get("finalizers"):
        found.append(f"NodeFailover/{incident} {failover['metadata']['finalizers']}")
    policy = scene.kube.get_or_none(f"{HAPOLICIES}/{scene.policy_name}")
    if policy is not None and policy["metadata"].get("finalizers"):
        found.append(f"HAPolicy/{scene.policy_name} {policy['metadata']['finalizers']}")
    remediations, _ = scene.kube.list(SELF_NODE_REMEDIATIONS.path(), label_selector="kvha.io/node")
    found += [f"remediation {r['metadata']['name']}" for r in remediations if r["metadata"]["name"] == host]
    return found


@pytest.mark.parametrize("change", ["deleted", "narrowed"])
def test_a_policy_changed_mid_restart_still_restarts_every_vm_and_leaves_nothing_behind(
    scenario: Scenario, change: str
) -> None:
    """An incident restarts one VM at a time; after the first, its HAPolicy is deleted (or its
    vmSelector narrowed to select none of them). Every other VM still restarts, the incident
    completes, and once the host is back the leftover checks find nothing of it."""
    scene = scenario
    names = [f"vm-{i}" for i in range(4)]
    host, old_uids = scene.host_running(names, memory="32Gi", vm_memory="1Gi")
    scene.policy(
        fencing={"strategy": "OutOfServiceTaint", "confirmation": "Manual"},
        restart={"maxParallel": 1, "tierOrdering": "None"},
    )
    scene.operator().start()
    scene.power_off_until_restored(host, restored=1)
    assert scene.failover()["status"]["phase"] == "Restarting"
    incident = scene.failover()["metadata"]["name"]

    if change == "deleted":
        scene.kube.delete(f"{HAPOLICIES}/{scene.policy_name}")
        wait_for(
            lambda: scene.kube.get_or_none(f"{HAPOLICIES}/{scene.policy_name}") is None,
            what="the HAPolicy to be gone (kvha releases its finalizer)",
            timeout=30,
        )
    else:
        scene.kube.patch(
            f"{HAPOLICIES}/{scene.policy_name}",
            {"spec": {"vmSelector": {"matchLabels": {"kvha-test-selects": "nothing"}}}},
        )

    failover = scene.failover(phase="Completed", timeout=120)
    entries = {e["name"]: e for e in failover["status"]["vms"]}
    assert {name: entries[name]["state"] for name in names} == dict.fromkeys(names, "Running"), failover["status"]
    assert failover["status"]["restored"] == len(names)
    for name in names:
        assert scene.vmi_uid(name) != old_uids[name]

    scene.bed.faults.revive(host)
    wait_for(
        lambda: (scene.kube.get(f"{NODEFAILOVERS}/{incident}").get("status") or {}).get("finished"),
        what="the incident to finish once its host is back",
        timeout=90,
        show=scene.diagnose,
    )
    if change == "narrowed":  # install.md's first uninstall step, before its checks
        scene.kube.delete(f"{HAPOLICIES}/{scene.policy_name}")
    wait_for(
        lambda: not _leftovers(scene, host, incident),
        what="nothing of the incident left on its node or objects",
        timeout=30,
        show=lambda: _leftovers(scene, host, incident),
    )
    scene.bed.ledger.assert_no_split_brain()


def test_replacements_that_never_become_ready_free_their_slots_after_the_tier_timeout(scenario: Scenario) -> None:
    """10 Highest VMs whose new instances never boot (their image, say, can no longer be pulled)
    and 10 Medium VMs on the failed host, maxParallel 10: the Highest restarts take every slot,
    and give them back tierTimeout later, so every Medium VM runs within tierTimeout and a few seconds."""
    scene = scenario
    tier_timeout = 20.0
    [host] = scene.nodes(1, cpu=32, memory="48Gi")
    broken = [f"broken-{i}" for i in range(10)]
    healthy = [f"medium-{i}" for i in range(10)]
    for name in broken:
        scene.vm(name, priority="Highest", memory="1Gi")
    for name in healthy:
        scene.vm(name, priority="Medium", memory="1Gi")
    for name in [*broken, *healthy]:
        scene.bed.wait_vm_status(scene.namespace, name, "Running", timeout=120)
    # What breaks them comes after they started: the running guests are fine, the next ones are not.
    for name in broken:
        scene.kube.patch(
            f"{VMS.path(scene.namespace)}/{name}",
            {"spec": {"template": {"metadata": {"labels": {NEVER_BOOTS_LABEL: "true"}}}}},
        )
    scene.nodes(2, cpu=32, memory="24Gi")
    scene.policy(
        fencing={"strategy": "OutOfServiceTaint", "confirmation": "Manual"},
        restart={"maxParallel": 10, "tierOrdering": "WaitForReady", "tierTimeout": f"{tier_timeout:.0f}s"},
    )
    scene.operator().start()
    scene.bed.faults.power_off(host)
    scene.failover(phase="Fencing")
    scene.confirm_fenced(host)

    def medium_all_running() -> Obj | None:
        failover = scene.failover()
        entries = [e for e in (failover.get("status") or {}).get("vms", []) if e["name"] in healthy]
        return failover if len(entries) == len(healthy) and all(e["state"] == "Running" for e in entries) else None

    failover = wait_for(
        medium_all_running, what="every Medium VM running again", timeout=tier_timeout + 90, show=scene.diagnose
    )
    entries = {e["name"]: e for e in failover["status"]["vms"]}
    first_restart = min(_ts(entries[name]["restartedAt"]) for name in broken)
    for name in broken:  # never ready, still followed
        assert entries[name]["state"] == "Restarting", entries[name]
        vmi = scene.bed.vmi(scene.namespace, name)
        assert vmi is not None
        assert (vmi.get("status") or {}).get("phase") != "Running"
    for name in healthy:
        running_after = (_ts(entries[name]["runningAt"]) - first_restart).total_seconds()
        assert running_after <= tier_timeout + 15, (name, running_after, entries[name])
        # The slots really were full until then: no Medium restart before the Highest gave them back.
        restarted_after = (_ts(entries[name]["restartedAt"]) - first_restart).total_seconds()
        assert restarted_after >= tier_timeout - 1, (name, restarted_after)
    scene.bed.ledger.assert_no_split_brain()
