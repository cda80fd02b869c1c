"""KubeVirtSimulator: the composition root of the simulated KubeVirt.

It stands in for virt-handler and a medik8s fence agent inside the test process, beside KubeVirt's
real virt-controller and virt-api (given `handler_client`); in the named fallback it plays
virt-controller too. Informers feed one work queue, a few worker threads run the controllers in
this package, and the ledger records which guests really run. Scale comes from the
informer caches (one list+watch per kind, no per-VM polling) and from writing only on change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from types import TracebackType

from kvha_testbed.crds import has_status_subresource
from kvha_testbed.kube import NODES, PODS, VMIS, VMS, KubeClient, KubeError, Obj
from kvha_testbed.sim.context import Caches, NodePower, SimContext, SimulatorConfig, now_rfc3339
from kvha_testbed.sim.fence_agent import FenceAgent
from kvha_testbed.sim.handler import sync_handler_vmi, write_vmi_status
from kvha_testbed.sim.informer import Informer, WorkQueue, meta
from kvha_testbed.sim.ledger import GuestLedger, Instance, vm_key
from kvha_testbed.sim.nodes import NodeAgents
from kvha_testbed.sim.vm_controller import sync_vm
from kvha_testbed.sim.vmi_controller import CREATED_BY, sync_vmi
from kvha_testbed.sim.vmi_logic import transition
from kvha_testbed.waiting import wait_for

log = logging.getLogger("kvha_testbed.sim")

LAUNCHER_SELECTOR = "kubevirt.io=virt-launcher"
_MAX_BACKOFF = 10.0


def _completed_pod_status() -> Obj:
    """What the kubelet reports when the launcher's compute container exits cleanly."""
    now = now_rfc3339()
    terminated = {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}
    return {
        "status": {
            "phase": "Succeeded",
            "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted"}],
            "containerStatuses": [
                {
                    "name": "compute",
                    "ready": False,
                    "restartCount": 0,
                    "image": "virt-launcher",
                    "imageID": "",
                    "state": {"terminated": terminated},
                }
            ],
        }
    }


def _owner_names(obj: Obj, kind: str) -> list[str]:
    return [ref["name"] for ref in meta(obj).get("ownerReferences") or [] if ref.get("kind") == kind]


class KubeVirtSimulator:
    """Test double for virt-controller + virt-handler (+ fence agent), running as threads.

    Use as a context manager or call start()/stop(). `ledger` is the ground truth of running
    guests; `power` is the physical state of nodes (changed through faults.Faults);
    `fence_agent` handles medik8s remediation CRs.
    """

    def __init__(
        self, client: KubeClient, config: SimulatorConfig | None = None, *, handler_client: KubeClient | None = None
    ) -> None:
        """`handler_client` (virt-handler's service account) means real KubeVirt runs beside us:
        the simulator then plays only virt-handler (sim/handler.py) and the fence agent."""
        self.client = client
        self.config = config or SimulatorConfig()
        self.ledger = GuestLedger()
        self.power = NodePower()
        self.queue = WorkQueue()
        caches = Caches(
            vms=Informer(client, VMS, on_change=self._on_vm),
            vmis=Informer(
                client,
                VMIS,
                on_change=self._on_vmi,
                indexers={"node": lambda o: [n] if (n := (o.get("status") or {}).get("nodeName")) else []},
            ),
            pods=Informer(
                client,
                PODS,
                label_selector=LAUNCHER_SELECTOR,
                on_change=self._on_pod,
                indexers={"vmi": lambda o: [u] if (u := (meta(o).get("labels") or {}).get(CREATED_BY)) else []},
            ),
            nodes=Informer(client, NODES, on_change=self._on_node),
        )
        self.ctx = SimContext(
            client=client,
            config=self.config,
            queue=self.queue,
            ledger=self.ledger,
            power=self.power,
            caches=caches,
            vm_status_subresource=True,
            vmi_status_subresource=False,
            handler_client=handler_client,
        )
        self.nodes = NodeAgents(self.ctx)
        self.fence_agent = FenceAgent(self.ctx)
        self._workers: list[threading.Thread] = []
        self._failures: dict[Hashable, int] = {}
        self._started = False

    # ----------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> KubeVirtSimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> KubeVirtSimulator:
        # Handle both shapes: KubeVirt's VM has a status subresource, its VMI does not.
        self.ctx.vm_status_subresource = has_status_subresource(self.client, "virtualmachines.kubevirt.io")
        self.ctx.vmi_status_subresource = has_status_subresource(self.client, "virtualmachineinstances.kubevirt.io")
        caches = self.ctx.caches
        for informer in (caches.nodes, caches.pods, caches.vmis, caches.vms):
            informer.start()
        for informer in (caches.nodes, caches.pods, caches.vmis, caches.vms):
            informer.wait_synced()
        self.fence_agent.start()
        for index in range(self.config.workers):
            worker = threading.Thread(target=self._work, name=f"sim-worker-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)
        self.nodes.start()
        self._started = True
        return self

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self.nodes.stop()
        self.fence_agent.stop()
        caches = self.ctx.caches
        for informer in (caches.vms, caches.vmis, caches.pods, caches.nodes):
            informer.stop()
        self.queue.shutdown()
        for worker in self._workers:
            worker.join(timeout=5)

    def attach_fencer(self, power_off: Callable[[str], object]) -> None:
        """Give the fence agent its power switch (faults.Faults.power_off)."""
        self.fence_agent.power_off = power_off

    # ----------------------------------------------------------------------------- queries

    @property
    def errors(self) -> list[str]:
        """Unexpected failures inside the simulator (should stay empty)."""
        return list(self.ctx.errors)

    def take_errors(self) -> list[str]:
        """Return and forget the errors recorded so far (each is reported once)."""
        taken, self.ctx.errors[:] = list(self.ctx.errors), []
        return taken

    def vm(self, namespace: str, name: str) -> Obj | None:
        return self.ctx.caches.vms.get(namespace, name)

    def vmi(self, namespace: str, name: str) -> Obj | None:
        return self.ctx.caches.vmis.get(namespace, name)

    def launcher_pods(self, namespace: str, vmi_name: str) -> list[Obj]:
        vmi = self.vmi(namespace, vmi_name)
        return self.ctx.caches.pods.by_index("vmi", vmi["metadata"]["uid"]) if vmi else []

    def live_instances(self, namespace: str, name: str) -> list[Instance]:
        return self.ledger.live_instances(vm_key(namespace, name))

    def vmis_on(self, node: str) -> list[Obj]:
        return self.ctx.caches.vmis.by_index("node", node)

    def wait_idle(self, *, timeout: float = 30.0, quiet: float = 0.5) -> None:
        """Wait until the work queue has stayed empty for `quiet` seconds."""

        def quiet_for() -> bool:
            if self.queue.depth():
                return False
            time.sleep(quiet)
            return self.queue.depth() == 0

        wait_for(quiet_for, what="the KubeVirt simulator to go idle", timeout=timeout)

    # ----------------------------------------------------------------------------- actions

    def node_changed(self, node: str) -> None:
        """Re-examine a node and everything on it (after a fault or revival)."""
        self.queue.add(("node", node))
        self.nodes.beat_now(node)
        for vmi in self.vmis_on(node):
            self.queue.add(("vmi", meta(vmi)["namespace"], meta(vmi)["name"]))

    def guest_crash(self, namespace: str, name: str) -> None:
        """The guest of a running VM died (QEMU crashed); its launcher pod still looks fine.

        virt-handler notices the missing domain and reports the VMI Failed, which is what
        RerunOnFailure restarts on.
        """
        vmi = self.client.get(VMIS.path(namespace, name))
        node = (vmi.get("status") or {}).get("nodeName") or ""
        if not self.power.up(node):
            raise RuntimeError(f"{namespace}/{name} runs on {node}, which is {self.power.get(node).value}")
        self.ledger.stop(vmi["metadata"]["uid"], reason="guest crashed")
        self.queue.add(("vmi", namespace, name))

    def guest_shutdown(self, namespace: str, name: str) -> None:
        """The guest OS of a running VM powered itself off: its launcher pod completes.

        virt-handler then reports the VMI Succeeded, which lets tests tell RerunOnFailure (no
        restart) from Always (restart).
        """
        vmi = self.client.get(VMIS.path(namespace, name))
        uid = vmi["metadata"]["uid"]
        node = (vmi.get("status") or {}).get("nodeName") or ""
        if not self.power.up(node):
            raise RuntimeError(f"{namespace}/{name} runs on {node}, which is {self.power.get(node).value}")
        self.ledger.stop(uid, reason="guest shut down")
        pods, _ = self.client.list(PODS.path(namespace), label_selector=f"{CREATED_BY}={uid}")
        for pod in pods:
            try:
                self.client.patch(PODS.path(namespace, pod["metadata"]["name"], "status"), _completed_pod_status())
            except KubeError as error:
                if not error.not_found:
                    raise
        if not self.simulates_virt_controller:
            self._report_succeeded(namespace, name, uid)

    def _report_succeeded(self, namespace: str, name: str, uid: str) -> None:
        """virt-handler's report of a domain that shut down (re-read and retried on conflicts)."""
        for _ in range(20):
            vmi = self.client.get_or_none(VMIS.path(namespace, name))
            if vmi is None or vmi["metadata"]["uid"] != uid:
                return
            status = vmi.get("status") or {}
            if write_vmi_status(self.ctx, vmi, transition(status, "Succeeded", now_rfc3339())):
                return
            time.sleep(0.1)
        raise RuntimeError(f"could not report {namespace}/{name} Succeeded: conflicts")

    # ----------------------------------------------------------------------------- events

    @property
    def simulates_virt_controller(self) -> bool:
        return self.ctx.handler_client is None

    def _on_vm(self, _kind: str, old: Obj | None, new: Obj | None) -> None:
        if not self.simulates_virt_controller:
            return  # the real virt-controller's business
        obj = new or old or {}
        self.queue.add(("vm", meta(obj).get("namespace", ""), meta(obj).get("name", "")))

    def _on_vmi(self, _kind: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old or {}
        namespace = meta(obj).get("namespace", "")
        self.queue.add(("vmi", namespace, meta(obj).get("name", "")))
        if self.simulates_virt_controller:
            for owner in _owner_names(obj, "VirtualMachine"):
                self.queue.add(("vm", namespace, owner))

    def _on_pod(self, _kind: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old or {}
        for owner in _owner_names(obj, "VirtualMachineInstance"):
            self.queue.add(("vmi", meta(obj).get("namespace", ""), owner))

    def _on_node(self, _kind: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old or {}
        self.queue.add(("node", meta(obj).get("name", "")))

    # ----------------------------------------------------------------------------- workers

    def _work(self) -> None:
        while (key := self.queue.get()) is not None:
            try:
                self._dispatch(key)
                self._failures.pop(key, None)
            except KubeError as error:
                self._retry(key, error, expected=error.status in (404, 409) or error.namespace_terminating)
            except Exception as error:  # a worker must survive anything, and report it
                self._retry(key, error, expected=False)
            finally:
                self.queue.done(key)

    def _dispatch(self, key: Hashable) -> None:
        assert isinstance(key, tuple)
        match key:
            case ("vm", namespace, name):
                sync_vm(self.ctx, namespace, name)
            case ("vmi", namespace, name) if self.simulates_virt_controller:
                sync_vmi(self.ctx, namespace, name)
            case ("vmi", namespace, name):
                sync_handler_vmi(self.ctx, namespace, name)
            case ("node", name) if self.simulates_virt_controller:
                self.nodes.check(name)
            case ("node", _name):
                pass  # KubeVirt's own node controller judges heartbeats
            case ("heartbeat", name):
                self.nodes.heartbeat(name)
            case ("remediation", plural, namespace, name):
                self.fence_agent.sync(plural, namespace, name)
            case _:
                raise ValueError(f"unknown work item {key!r}")

    def _retry(self, key: Hashable, error: Exception, *, expected: bool) -> None:
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        if not expected:
            message = f"{key}: {type(error).__name__}: {error}"
            log.warning("simulator: %s (retry %d)", message, failures)
            self.ctx.record_error(message)
        self.queue.add_after(key, min(0.2 * 2 ** (failures - 1), _MAX_BACKOFF))
