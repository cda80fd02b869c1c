"""The whole testbed in one object: control plane + kwok + KubeVirt + simulated handler + faults.

fixtures.py, cli.py, the demo and the benchmarks all start it the same way, so there is one place
that knows the order (plane, then kwok, then KubeVirt's real virt-api and virt-controller, then the
simulated virt-handler, then the fence agent's power switch) and one place that tears everything
down again. `KubeVirtMode.SIMULATED` is the named fallback with a simulated virt-controller.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from kvha_testbed.build import Assets, ensure_built
from kvha_testbed.faults import Faults
from kvha_testbed.kube import NODES, VMIS, VMS, KubeClient, Obj
from kvha_testbed.kubevirt_components import RealKubeVirt
from kvha_testbed.kwok import Kwok
from kvha_testbed.plane import ControlPlane, PlaneConfig
from kvha_testbed.sim.context import SimulatorConfig
from kvha_testbed.sim.fence_agent import FenceAgent
from kvha_testbed.sim.launcher import SCHEDULABLE_LABEL
from kvha_testbed.sim.ledger import GuestLedger
from kvha_testbed.sim.simulator import KubeVirtSimulator
from kvha_testbed.sim.vm_logic import phase
from kvha_testbed.waiting import wait_for


class KubeVirtMode(enum.Enum):
    """Which KubeVirt the testbed runs."""

    # KubeVirt's own virt-controller and virt-api (built from kubevirt.io/kubevirt); only
    # virt-handler's work on the nodes is simulated.
    REAL = "real"
    # The named fallback: virt-controller simulated too (kvha_testbed.sim), no virt-api.
    SIMULATED = "simulated"

    @classmethod
    def from_env(cls) -> KubeVirtMode:
        """KVHA_TESTBED_KUBEVIRT=simulated selects the fallback; unset means real KubeVirt."""
        value = os.environ.get(KUBEVIRT_MODE_ENV, cls.REAL.value)
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(mode.value for mode in cls)
            raise ValueError(f"{KUBEVIRT_MODE_ENV}={value!r}: expected one of {choices}") from None


KUBEVIRT_MODE_ENV = "KVHA_TESTBED_KUBEVIRT"


@dataclass(frozen=True)
class TestbedConfig:
    __test__ = False  # not a pytest test class, despite the name

    plane: PlaneConfig = field(default_factory=PlaneConfig)
    kubevirt: KubeVirtMode = field(default_factory=KubeVirtMode.from_env)
    # None: the mode's own timings (real KubeVirt: virt-handler's real heartbeat cadence;
    # simulated: SimulatorConfig's short defaults).
    simulator: SimulatorConfig | None = None
    # kwok renews node Leases every quarter of this; keep it at or below the node-monitor grace.
    lease_duration_seconds: int = 8

    def __post_init__(self) -> None:
        if self.simulator is None:
            default = SimulatorConfig.kubevirt_cadence() if self.kubevirt is KubeVirtMode.REAL else SimulatorConfig()
            object.__setattr__(self, "simulator", default)  # frozen: filled once, at construction

    def simulator_config(self) -> SimulatorConfig:
        assert self.simulator is not None  # __post_init__
        return self.simulator

    def plane_config(self) -> PlaneConfig:
        # Real virt-api validates VMs itself; the stand-in policy would only duplicate it.
        return replace(self.plane, virt_api_policy=self.kubevirt is KubeVirtMode.SIMULATED)


class Testbed:
    """Start with `with Testbed() as bed:`; see docs/testbed.md for the tour."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, assets: Assets | None = None, config: TestbedConfig | None = None) -> None:
        self.config = config or TestbedConfig()
        self._assets = assets
        self._plane: ControlPlane | None = None
        self._kwok: Kwok | None = None
        self._sim: KubeVirtSimulator | None = None
        self._kubevirt: RealKubeVirt | None = None
        self._faults: Faults | None = None
        self.timings: dict[str, float] = {}

    def __enter__(self) -> Testbed:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(keep_workdir=exc is not None)

    def start(self) -> Testbed:
        started = time.monotonic()
        assets = self._assets or ensure_built()
        self._plane = plane = ControlPlane(assets, self.config.plane_config())
        try:
            plane.start()
            self.timings.update({f"plane.{k}": v for k, v in plane.timings.items()})
            self._kwok = kwok = Kwok(plane, lease_duration_seconds=self.config.lease_duration_seconds).start()
            self.timings["kwok"] = round(time.monotonic() - started, 2)
            handler_client = None
            if self.config.kubevirt is KubeVirtMode.REAL:
                self._kubevirt = kubevirt = RealKubeVirt(plane).start()
                self.timings.update({f"kubevirt.{k}": v for k, v in kubevirt.timings.items()})
                self.timings["kubevirt"] = round(time.monotonic() - started, 2)
                handler_client = KubeClient(kubevirt.handler_credentials(), pool_size=32)
            self._sim = sim = KubeVirtSimulator(
                plane.client, self.config.simulator_config(), handler_client=handler_client
            ).start()
            self._faults = Faults(kwok, sim)
            sim.attach_fencer(self._faults.power_off)
            self.timings["ready"] = round(time.monotonic() - started, 2)
        except BaseException:
            self.stop(keep_workdir=True)
            raise
        return self

    def stop(self, *, keep_workdir: bool = False) -> None:
        if self._sim is not None:
            self._sim.stop()
            if self._sim.ctx.handler_client is not None:
                self._sim.ctx.handler_client.close()
        if self._kubevirt is not None:
            self._kubevirt.stop()
        if self._kwok is not None:
            self._kwok.stop()
        if self._plane is not None:
            self._plane.stop(keep_workdir=keep_workdir or self.config.plane.keep_workdir)

    # ----------------------------------------------------------------------------- access

    def _require(self) -> tuple[ControlPlane, Kwok, KubeVirtSimulator, Faults]:
        if self._plane is None or self._kwok is None or self._sim is None or self._faults is None:
            raise RuntimeError("testbed not started")
        return self._plane, self._kwok, self._sim, self._faults

    @property
    def control_plane(self) -> ControlPlane:
        return self._require()[0]

    @property
    def kwok(self) -> Kwok:
        return self._require()[1]

    @property
    def kubevirt(self) -> RealKubeVirt | None:
        """KubeVirt's real virt-controller and virt-api (None with the simulated fallback)."""
        self._require()
        return self._kubevirt

    @property
    def sim(self) -> KubeVirtSimulator:
        """The simulated KubeVirt: virt-handler and the fence agent (plus virt-controller in the
        simulated fallback)."""
        return self._require()[2]

    @property
    def faults(self) -> Faults:
        """power_off / partition / revive nodes."""
        return self._require()[3]

    @property
    def fence_agent(self) -> FenceAgent:
        return self._require()[2].fence_agent

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (system:masters)."""
        return self._require()[0].kubeconfig

    @property
    def client(self) -> KubeClient:
        """The testbed's admin JSON client (fast, dicts in and out)."""
        return self._require()[0].client

    @property
    def ledger(self) -> GuestLedger:
        return self._require()[2].ledger

    def mint_kubeconfig(self, user: str, groups: Sequence[str] = (), *, server: str | None = None) -> Path:
        return self._require()[0].mint_kubeconfig(user, tuple(groups), server=server)

    def serviceaccount_kubeconfig(self, namespace: str, name: str, *, create: bool = True) -> Path:
        return self._require()[0].serviceaccount_kubeconfig(namespace, name, create=create)

    def kubernetes_client(self, kubeconfig: Path | None = None) -> Any:
        """An official `kubernetes.client.ApiClient` (admin unless another kubeconfig is given)."""
        return self._require()[0].kubernetes_client(kubeconfig)

    def check_health(self) -> None:
        plane, _, sim, _ = self._require()
        plane.check_health()
        if errors := sim.take_errors():
            raise AssertionError("KubeVirt simulator reported errors:\n" + "\n".join(errors[-10:]))

    # ----------------------------------------------------------------------------- nodes and VMs

    def add_node(
        self,
        name: str,
        *,
        cpu: str | int = 8,
        memory: str = "32Gi",
        labels: Mapping[str, str] | None = None,
        taints: Sequence[Mapping[str, Any]] = (),
        timeout: float = 60.0,
    ) -> Obj:
        """A kwok node, Ready and marked schedulable by the simulated virt-handler."""
        _, kwok, sim, _ = self._require()
        kwok.add_node(name, cpu=cpu, memory=memory, labels=labels, taints=taints, timeout=timeout)
        sim.nodes.beat_now(name)
        return wait_for(
            lambda: (
                n
                if ((n := self.client.get(NODES.path(name=name)))["metadata"].get("labels") or {}).get(
                    SCHEDULABLE_LABEL
                )
                == "true"
                else None
            ),
            what=f"virt-handler to mark {name} {SCHEDULABLE_LABEL}=true",
            timeout=timeout,
        )

    def vm(self, namespace: str, name: str) -> Obj | None:
        return self.client.get_or_none(VMS.path(namespace, name))

    def vmi(self, namespace: str, name: str) -> Obj | None:
        return self.client.get_or_none(VMIS.path(namespace, name))

    def wait_vm_status(self, namespace: str, name: str, printable: str, *, timeout: float = 60.0) -> Obj:
        """Wait for VM status.printableStatus (Running, Stopped, ErrorUnschedulable, ...)."""

        def probe() -> Obj | None:
            vm = self.vm(namespace, name)
            return vm if vm and (vm.get("status") or {}).get("printableStatus") == printable else None

        return wait_for(
            probe,
            what=f"VM {namespace}/{name} to be {printable}",
            timeout=timeout,
            show=lambda: (
                (self.vm(namespace, name) or {}).get("status"),
                (self.vmi(namespace, name) or {}).get("status"),
            ),
        )

    def wait_vmi_phase(
        self, namespace: str, name: str, wanted: str, *, timeout: float = 60.0, uid_not: str | None = None
    ) -> Obj:
        """Wait for the VMI to reach a phase (optionally: a VMI other than the one with `uid_not`)."""

        def probe() -> Obj | None:
            vmi = self.vmi(namespace, name)
            if vmi is None or phase(vmi) != wanted or vmi["metadata"]["uid"] == uid_not:
                return None
            return vmi

        return wait_for(
            probe,
            what=f"VMI {namespace}/{name} to be {wanted}" + (f" (a new one, not uid {uid_not})" if uid_not else ""),
            timeout=timeout,
            show=lambda: (self.vmi(namespace, name) or {}).get("status"),
        )

    def summary(self) -> str:
        plane, *_ = self._require()
        return f"{plane.summary()}\n  KubeVirt: {self.describe_kubevirt()}\n  testbed timings: {self.timings}"

    def describe_kubevirt(self) -> str:
        if self.config.kubevirt is KubeVirtMode.REAL:
            return "real virt-controller and virt-api (v1.7.0), simulated virt-handler"
        return f"SIMULATED virt-controller and virt-handler, no virt-api ({KUBEVIRT_MODE_ENV}=simulated)"
