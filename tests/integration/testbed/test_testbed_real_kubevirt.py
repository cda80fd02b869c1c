"""KubeVirt's real virt-controller and virt-api in the testbed: the behaviour kvha builds on, pinned.

These run against KubeVirt v1.7.0's own code (built by build.py's `kubevirt` recipe); only
virt-handler's work on the nodes is simulated. Each test names the KubeVirt source it pins.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from kvha_testbed.kube import PODS, VMIS, VMS, KubeError
from kvha_testbed.objects import vm_manifest
from kvha_testbed.sim.context import parse_rfc3339
from kvha_testbed.sim.vm_logic import phase
from kvha_testbed.testbed import Testbed
from kvha_testbed.waiting import holds_for, wait_for

pytestmark = pytest.mark.integration

Obj = dict[str, Any]


@pytest.fixture
def bed(plane: Testbed) -> Testbed:
    assert plane.kubevirt is not None, "the session testbed runs real KubeVirt by default"
    return plane


@pytest.fixture
def ns(namespace: str) -> str:
    return namespace


@pytest.fixture
def node(nodes: Callable[..., list[str]]) -> str:
    return nodes(1)[0]


def _running_vm(bed: Testbed, namespace: str, name: str, **kwargs: Any) -> Obj:
    bed.client.create(VMS.path(namespace), vm_manifest(name, namespace=namespace, **kwargs))
    return bed.wait_vmi_phase(namespace, name, "Running", timeout=60)


def _launcher(bed: Testbed, namespace: str, vmi: Obj) -> Obj:
    pods, _ = bed.client.list(PODS.path(namespace), label_selector=f"kubevirt.io/created-by={vmi['metadata']['uid']}")
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def _wait(probe: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    return wait_for(probe, what=what, timeout=timeout)


def test_the_real_components_run_as_kubevirts_service_accounts(bed: Testbed, ns: str, node: str) -> None:
    """virt-controller made the launcher pod (its nodeSelector and device requests are KubeVirt's)."""
    vmi = _running_vm(bed, ns, "hello")
    assert vmi["status"]["nodeName"] == node
    pod = _launcher(bed, ns, vmi)
    assert pod["spec"]["nodeSelector"]["kubevirt.io/schedulable"] == "true"
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert limits["devices.kubevirt.io/kvm"] == "1"
    assert bed.kubevirt is not None
    assert set(bed.kubevirt.processes) == {"virt-api", "virt-controller"}


def test_a_vmi_status_patch_by_anyone_but_kubevirt_is_reverted(bed: Testbed, ns: str, node: str) -> None:
    """virt-api's VMI mutator (mutators/vmi-mutator.go) puts the old status back for every user that
    is not a KubeVirt service account, even system:masters; and there is no /status to go around it."""
    _running_vm(bed, ns, "guarded")
    path = VMIS.path(ns, "guarded")
    answer = bed.client.patch(path, {"status": {"phase": "Failed", "reason": "NodeUnresponsive"}})
    assert answer["status"]["phase"] == "Running", "the API answers 200 with the status unchanged"
    assert phase(bed.client.get(path)) == "Running"
    with pytest.raises(KubeError) as error:
        bed.client.patch(path + "/status", {"status": {"phase": "Failed"}})
    assert error.value.status == 404


def test_launcher_pod_gone_fails_the_vmi_and_the_vm_creates_a_new_one(bed: Testbed, ns: str, node: str) -> None:
    """watch/vmi/lifecycle.go: a Running VMI without a pod is Failed at once, whatever its node's
    state; the VM controller then creates a new VMI without backoff (the old one had run)."""
    vmi = _running_vm(bed, ns, "phoenix")
    old_uid = vmi["metadata"]["uid"]
    started = time.monotonic()
    bed.client.delete(PODS.path(ns, _launcher(bed, ns, vmi)["metadata"]["name"]), grace_seconds=0)
    replacement = _wait(
        lambda: v if (v := bed.vmi(ns, "phoenix")) and v["metadata"]["uid"] != old_uid else None,
        "a new VMI for phoenix",
        timeout=15,
    )
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"no backoff for a VMI that had run ({elapsed:.1f}s)"
    assert bed.ledger.instance(old_uid) is not None
    assert not bed.ledger.instance(old_uid).live, "the old guest died with its launcher"  # type: ignore[union-attr]
    new = bed.wait_vmi_phase(ns, "phoenix", "Running", uid_not=old_uid, timeout=60)
    assert new["metadata"]["uid"] == replacement["metadata"]["uid"]
    bed.ledger.assert_no_split_brain()


def test_rerun_on_failure_restarts_after_failed_and_not_after_succeeded(bed: Testbed, ns: str, node: str) -> None:
    vmi = _running_vm(bed, ns, "rerun", run_strategy="RerunOnFailure")
    first = vmi["metadata"]["uid"]
    bed.sim.guest_crash(ns, "rerun")
    second = bed.wait_vmi_phase(ns, "rerun", "Running", uid_not=first, timeout=60)["metadata"]["uid"]

    bed.sim.guest_shutdown(ns, "rerun")
    bed.wait_vmi_phase(ns, "rerun", "Succeeded", timeout=30)
    holds_for(
        lambda: (v := bed.vmi(ns, "rerun")) is None or v["metadata"]["uid"] == second,
        what="RerunOnFailure not to restart a guest that shut itself down",
        duration=5,
    )


def test_a_vmi_that_never_ran_restarts_with_backoff(bed: Testbed, ns: str, node: str) -> None:
    """watch/vm/vm.go calculateStartBackoffTime: 10 s x failures^2 (+ up to 50 %), CrashLoopBackOff."""
    bed.client.create(
        VMS.path(ns), vm_manifest("unlucky", namespace=ns, node_selector={"kvha-test/no-such-node": "true"})
    )
    vmi = bed.wait_vmi_phase(ns, "unlucky", "Scheduling", timeout=30)
    old_uid = vmi["metadata"]["uid"]
    bed.client.delete(PODS.path(ns, _launcher(bed, ns, vmi)["metadata"]["name"]), grace_seconds=0)
    failed_at = time.monotonic()
    vm = _wait(
        lambda: v if ((v := bed.vm(ns, "unlucky") or {}).get("status") or {}).get("startFailure") else None,
        "the VM to record a start failure",
    )
    failure = vm["status"]["startFailure"]
    assert failure["consecutiveFailCount"] == 1
    assert failure["lastFailedVMIUID"] == old_uid
    backoff = parse_rfc3339(failure["retryAfterTimestamp"]) - time.time()
    assert 5 <= backoff <= 16, backoff  # 10..15 s, minus the time it took us to look
    bed.wait_vm_status(ns, "unlucky", "CrashLoopBackOff", timeout=10)
    _wait(
        lambda: (v := bed.vmi(ns, "unlucky")) is not None and v["metadata"]["uid"] != old_uid,
        "the VM controller to try again",
        timeout=30,
    )
    waited = time.monotonic() - failed_at
    assert waited >= 9, f"the retry came after {waited:.1f}s, without backoff"
