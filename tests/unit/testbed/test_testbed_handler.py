"""The simulated virt-handler's decisions (beside real virt-controller), and the webhook rewrite."""

from __future__ import annotations

import base64
from typing import Any

from kvha_testbed.kubevirt_components import local_webhooks
from kvha_testbed.sim.handler import plan_handler
from kvha_testbed.sim.vmi_logic import NEVER_BOOTS_LABEL, plan_vmi

NOW = "2026-01-01T00:00:00Z"
Obj = dict[str, Any]


def _vmi(phase: str, node: str = "n1") -> Obj:
    return {"metadata": {"name": "vm", "namespace": "ns", "uid": "u1"}, "status": {"phase": phase, "nodeName": node}}


def _pod(phase: str = "Running", node: str = "n1", *, deleting: bool = False) -> Obj:
    meta: Obj = {"name": "virt-launcher-vm-abcde", "uid": "p1"}
    if deleting:
        meta["deletionTimestamp"] = NOW
    return {"metadata": meta, "spec": {"nodeName": node}, "status": {"phase": phase}}


def test_a_scheduled_vmi_boots_once_its_launcher_runs() -> None:
    plan = plan_handler(_vmi("Scheduled"), [_pod()], node_up=True, guest_live=False, now=NOW)
    assert plan.start_guest
    assert plan.status is not None
    assert plan.status["phase"] == "Running"
    assert plan.status["phaseTransitionTimestamps"] == [{"phase": "Running", "phaseTransitionTimestamp": NOW}]


def test_a_vmi_labelled_never_boots_stays_scheduled_although_its_launcher_runs() -> None:
    """The test-only stand-in for a replacement that never becomes ready (image pull, missing
    secret, crash loop): both the handler beside real virt-controller and the simulated one."""
    broken = _vmi("Scheduled")
    broken["metadata"]["labels"] = {NEVER_BOOTS_LABEL: "true"}
    plan = plan_handler(broken, [_pod()], node_up=True, guest_live=False, now=NOW)
    assert (plan.start_guest, plan.status) == (False, None)
    simulated = plan_vmi(broken, [_pod()], node_up=True, guest_live=False, now=NOW)
    assert not simulated.start_guest
    assert (simulated.status or {}).get("phase", "Scheduled") == "Scheduled"
    unlabelled = plan_vmi(_vmi("Scheduled"), [_pod()], node_up=True, guest_live=False, now=NOW)
    assert unlabelled.start_guest  # the label, nothing else, is what keeps it down


def test_nothing_boots_on_a_dead_node_or_from_a_pending_launcher() -> None:
    assert not plan_handler(_vmi("Scheduled"), [_pod()], node_up=False, guest_live=False, now=NOW).start_guest
    assert not plan_handler(_vmi("Scheduled"), [_pod("Pending")], node_up=True, guest_live=False, now=NOW).start_guest
    terminating = _pod(deleting=True)
    assert not plan_handler(_vmi("Scheduled"), [terminating], node_up=True, guest_live=False, now=NOW).start_guest


def test_the_handler_never_writes_what_virt_controller_owns() -> None:
    """Pod gone on a live node: the guest dies, but failing the VMI is virt-controller's job."""
    plan = plan_handler(_vmi("Running"), [], node_up=True, guest_live=True, now=NOW)
    assert plan.status is None
    assert plan.stop_guest


def test_a_dead_guest_under_a_live_launcher_is_reported_failed() -> None:
    plan = plan_handler(_vmi("Running"), [_pod()], node_up=True, guest_live=False, now=NOW)
    assert plan.status is not None
    assert plan.status["phase"] == "Failed"


def test_a_partitioned_node_keeps_its_guest() -> None:
    plan = plan_handler(_vmi("Failed"), [], node_up=False, guest_live=True, now=NOW)
    assert plan.stop_guest is None
    assert plan.status is None


def test_a_final_vmi_kills_its_guest_on_a_live_node() -> None:
    assert plan_handler(_vmi("Failed"), [], node_up=True, guest_live=True, now=NOW).stop_guest


def test_webhooks_point_at_the_local_virt_api_with_the_ca() -> None:
    generated = {
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "virt-api-mutator"},
        "webhooks": [
            {
                "name": "virtualmachines-mutator.kubevirt.io",
                "clientConfig": {"service": {"name": "virt-api", "namespace": "kubevirt", "path": "/vms-mutate"}},
                "rules": [{"operations": ["CREATE"]}],
            }
        ],
    }
    local = local_webhooks(generated, url="https://127.0.0.1:8443", ca_bundle=b"PEM")
    [webhook] = local["webhooks"]
    assert webhook["clientConfig"] == {
        "url": "https://127.0.0.1:8443/vms-mutate",
        "caBundle": base64.b64encode(b"PEM").decode(),
    }
    assert webhook["rules"] == [{"operations": ["CREATE"]}]
    assert "service" in generated["webhooks"][0]["clientConfig"], "the generated object is not changed"
