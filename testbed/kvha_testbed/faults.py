"""Node faults that look the same to the API and differ in reality.

Powered off and partitioned nodes are indistinguishable from the control plane: both stop renewing
their Lease (kwok's label is removed), go Ready=Unknown, get `unreachable` taints, and their pods
stay Terminating after eviction. The difference is in the ledger: a powered-off node's guests are
dead, a partitioned node's guests keep running - so restarting them elsewhere without fencing
first is split brain. kvha must treat every silent node as possibly partitioned.

revive() brings a node back: after a power-off it reboots empty (its launcher pods are reported
Failed as a rebooted kubelet would, before kwok manages it again); after a partition its guests are
still there, and those whose VMI or pod was meanwhile deleted or replaced are killed as the
reconnected kubelet and virt-handler would do.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from kvha_testbed.kube import PODS, STRATEGIC, Obj
from kvha_testbed.kwok import Kwok
from kvha_testbed.sim.context import Power
from kvha_testbed.sim.informer import meta
from kvha_testbed.sim.ledger import Instance
from kvha_testbed.sim.simulator import KubeVirtSimulator
from kvha_testbed.sim.vm_logic import FINAL_PHASES, deleting
from kvha_testbed.sim.vmi_logic import pod_alive


class Faults:
    """Inject and heal node faults; each call changes kwok's view and the simulator's reality."""

    def __init__(self, kwok: Kwok, simulator: KubeVirtSimulator) -> None:
        self.kwok = kwok
        self.sim = simulator

    def state(self, node: str) -> Power:
        return self.sim.power.get(node)

    def power_off(self, node: str) -> list[Instance]:
        """The node loses power: heartbeats stop and every guest on it dies. Returns the dead guests."""
        self.sim.power.set(node, Power.POWERED_OFF)
        dead = self.sim.ledger.stop_node(node, reason="node powered off")
        self.kwok.set_managed(node, False)
        self.sim.node_changed(node)
        return dead

    def partition(self, node: str) -> list[Instance]:
        """The node is cut off from the API: heartbeats stop, guests keep running. Returns them."""
        self.sim.power.set(node, Power.PARTITIONED)
        self.kwok.set_managed(node, False)
        self.sim.node_changed(node)
        return self.sim.ledger.live_on(node)

    def revive(self, node: str) -> list[Instance]:
        """The node is back (rebooted after power-off, reconnected after partition).

        Returns the guests killed on reconnection (always empty after a power-off).
        """
        previous = self.sim.power.get(node)
        killed: list[Instance] = []
        if previous is Power.POWERED_OFF:
            self._report_launchers_failed(node)
        elif previous is Power.PARTITIONED:
            killed = self._kill_superseded_guests(node)
        self.sim.power.set(node, Power.UP)
        self.kwok.set_managed(node, True)
        self.sim.node_changed(node)
        return killed

    @contextlib.contextmanager
    def skewed_clock(self, node: str, *, seconds: float, renew_every: float = 2.0) -> Iterator[None]:
        """The node stays alive and connected, but its clock runs `seconds` off (negative: behind).

        kwok stops writing for the node, and a writer does what that node's kubelet would every
        `renew_every` s, stamping with the skewed clock: renew the Lease and post the Ready
        condition's heartbeat. The controller-manager keeps the node Ready (a changed status
        heartbeat is a sign of life to it whatever its value; a Lease only counts when its
        renewTime moves forward, so a clock set back at once would not), and the simulator keeps
        its guests running and its virt-handler heartbeat going.
        """
        lease = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}"
        status = f"/api/v1/nodes/{node}/status"
        stop = threading.Event()

        def renew() -> None:
            while not stop.is_set():
                stamp = datetime.now(UTC) + timedelta(seconds=seconds)
                heartbeat = {
                    "type": "Ready",
                    "status": "True",
                    "lastHeartbeatTime": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
                with contextlib.suppress(Exception):  # a missed renewal is what a real node does too
                    self.sim.client.patch(lease, {"spec": {"renewTime": stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}})
                    self.sim.client.patch(status, {"status": {"conditions": [heartbeat]}}, content_type=STRATEGIC)
                stop.wait(renew_every)

        self.kwok.set_managed(node, False)
        writer = threading.Thread(target=renew, name=f"skewed-clock-{node}", daemon=True)
        writer.start()
        try:
            yield
        finally:
            stop.set()
            writer.join(timeout=10)
            self.kwok.set_managed(node, True)

    def _report_launchers_failed(self, node: str) -> None:
        """A rebooted kubelet finds its containers gone: the launcher pods end Failed."""
        pods, _ = self.sim.client.list(
            PODS.path(), field_selector=f"spec.nodeName={node}", label_selector="kubevirt.io=virt-launcher"
        )
        for pod in pods:
            if deleting(pod) or not pod_alive(pod):
                continue  # kwok finishes the deletion once it manages the node again
            self.sim.client.patch(
                PODS.path(meta(pod)["namespace"], meta(pod)["name"], "status"),
                {
                    "status": {
                        "phase": "Failed",
                        "reason": "NodeRebooted",
                        "conditions": [{"type": "Ready", "status": "False", "reason": "NodeRebooted"}],
                    }
                },
            )

    def _kill_superseded_guests(self, node: str) -> list[Instance]:
        """Reconnected: guests whose VMI is gone, final, elsewhere or podless are shut down."""
        killed = []
        for instance in self.sim.ledger.live_on(node):
            namespace, name = instance.vm.split("/", 1)
            vmi = self.sim.client.get_or_none(
                f"/apis/kubevirt.io/v1/namespaces/{namespace}/virtualmachineinstances/{name}"
            )
            if vmi is None or not self._still_owned(vmi, instance):
                stopped = self.sim.ledger.stop(instance.vmi_uid, reason="node reconnected: guest superseded")
                if stopped is not None:
                    killed.append(stopped)
        return killed

    def _still_owned(self, vmi: Obj, instance: Instance) -> bool:
        status = vmi.get("status") or {}
        if meta(vmi).get("uid") != instance.vmi_uid or status.get("phase") in FINAL_PHASES:
            return False
        if deleting(vmi) or status.get("nodeName") != instance.node:
            return False
        pods, _ = self.sim.client.list(
            PODS.path(meta(vmi)["namespace"]), label_selector=f"kubevirt.io/created-by={instance.vmi_uid}"
        )
        return any(not deleting(p) and pod_alive(p) for p in pods)
