"""An unfenced restart on real virt-controller is split brain: pinned on a testbed of its own.

The split brain it provokes stays in the ledger, and scenarios assert that the session ledger has
none, so this test must not share the session testbed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kvha_testbed.build import ensure_built
from kvha_testbed.kube import PODS, VMS
from kvha_testbed.objects import vm_manifest
from kvha_testbed.testbed import KubeVirtMode, Testbed, TestbedConfig
from kvha_testbed.waiting import wait_for

pytestmark = pytest.mark.integration

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def plane() -> Iterator[Testbed]:
    with Testbed(ensure_built(), TestbedConfig(kubevirt=KubeVirtMode.REAL)) as bed:
        yield bed


def _launcher(bed: Testbed, namespace: str, vmi: Obj) -> Obj:
    pods, _ = bed.client.list(PODS.path(namespace), label_selector=f"kubevirt.io/created-by={vmi['metadata']['uid']}")
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def test_restart_without_fencing_is_split_brain_until_the_partitioned_node_reconnects(
    plane: Testbed, namespace: str, nodes: Callable[..., list[str]]
) -> None:
    """The hazard kvha exists for, on real virt-controller: deleting the launcher of a partitioned
    node's VM restarts it elsewhere at once while the old guest still runs; the ledger records the
    split brain, and the reconnected virt-handler kills the superseded guest."""
    bed, ns = plane, namespace
    nodes(2)
    bed.client.create(VMS.path(ns), vm_manifest("twice", namespace=ns))
    vmi = bed.wait_vmi_phase(ns, "twice", "Running", timeout=60)
    old_uid, old_node = vmi["metadata"]["uid"], vmi["status"]["nodeName"]
    bed.faults.partition(old_node)
    wait_for(
        lambda: any(
            t["key"] == "node.kubernetes.io/unreachable"
            for t in bed.client.get(f"/api/v1/nodes/{old_node}")["spec"].get("taints", [])
        ),
        what=f"{old_node} to be tainted unreachable",
        timeout=60,
    )
    bed.client.delete(PODS.path(ns, _launcher(bed, ns, vmi)["metadata"]["name"]), grace_seconds=0)
    new = bed.wait_vmi_phase(ns, "twice", "Running", uid_not=old_uid, timeout=60)
    assert new["status"]["nodeName"] != old_node
    [event] = bed.ledger.split_brain_events(f"{ns}/twice")
    assert old_uid in {i.vmi_uid for i in event.instances}

    killed = bed.faults.revive(old_node)
    assert [i.vmi_uid for i in killed] == [old_uid]
    assert [i.vmi_uid for i in bed.ledger.live_instances(f"{ns}/twice")] == [new["metadata"]["uid"]]
