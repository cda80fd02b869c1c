"""What the simulated KubeVirt controllers share: caches, queue, ground truth and settings."""

from __future__ import annotations

import datetime
import enum
import threading
from dataclasses import dataclass, field

from kvha_testbed.kube import KubeClient
from kvha_testbed.sim.informer import Informer, WorkQueue
from kvha_testbed.sim.ledger import GuestLedger


@dataclass(frozen=True)
class SimulatorConfig:
    """Timings of the simulated KubeVirt; defaults are short so tests see effects in seconds."""

    # virt-handler refreshes the node's kubevirt.io/heartbeat annotation this often, waiting up to
    # `heartbeat_jitter` times longer at random (real KubeVirt: 1 min and 1.2, so 60-132 s; see
    # `kubevirt_cadence`). The simulated fallback's default beats fast for its short timeout.
    heartbeat_interval: float = 3.0
    heartbeat_jitter: float = 0.0
    # virt-controller's node controller calls a node unresponsive after this long without a
    # heartbeat, sets kubevirt.io/schedulable=false and fails VMIs whose pod is gone (real: 5 min).
    heartbeat_timeout: float = 20.0
    # How often the node controller re-examines each node (real: 1 min, plus on every event).
    node_recheck_interval: float = 2.0
    workers: int = 16
    # KubeVirt's developerConfiguration.cpuAllocationRatio: vCPUs / ratio is the pod's CPU request.
    cpu_allocation_ratio: int = 10
    # When set, launcher pods tolerate the not-ready/unreachable NoExecute taints this long, as the
    # apiserver's DefaultTolerationSeconds admission does with its real default of 300 s; None
    # leaves it to the testbed apiserver's short setting (taint eviction within seconds).
    eviction_toleration_seconds: int | None = None
    # Simulated fence agent: time from remediation CR to "node powered off".
    fence_delay: float = 1.0

    @classmethod
    def kubevirt_cadence(cls) -> SimulatorConfig:
        """virt-handler's real timings (pkg/virt-handler heartbeat: every minute, jitter 1.2) and
        virt-controller's node controller's (stale after 5 min, recheck every minute)."""
        return cls(heartbeat_interval=60.0, heartbeat_jitter=1.2, heartbeat_timeout=300.0, node_recheck_interval=60.0)


class Power(enum.Enum):
    """What is physically true about a node; the API can only guess at it."""

    UP = "up"
    PARTITIONED = "partitioned"  # running, guests alive, but cut off from the API
    POWERED_OFF = "powered-off"  # guests dead


class NodePower:
    """Ground truth per node (unknown nodes are UP); written by faults.py and the fence agent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, Power] = {}

    def get(self, node: str) -> Power:
        with self._lock:
            return self._state.get(node, Power.UP)

    def set(self, node: str, power: Power) -> Power:
        """Set and return the previous state."""
        with self._lock:
            previous = self._state.get(node, Power.UP)
            self._state[node] = power
            return previous

    def up(self, node: str) -> bool:
        return bool(node) and self.get(node) is Power.UP

    def snapshot(self) -> dict[str, Power]:
        with self._lock:
            return dict(self._state)


@dataclass
class Caches:
    vms: Informer
    vmis: Informer
    pods: Informer
    nodes: Informer


@dataclass
class SimContext:
    client: KubeClient
    config: SimulatorConfig
    queue: WorkQueue
    ledger: GuestLedger
    power: NodePower
    caches: Caches
    vm_status_subresource: bool
    vmi_status_subresource: bool
    # With real KubeVirt: virt-handler's own client (its service account); the simulator then
    # plays only virt-handler. None: the simulator plays virt-controller too, as the admin.
    handler_client: KubeClient | None = None
    errors: list[str] = field(default_factory=list)

    def record_error(self, message: str) -> None:
        """Unexpected failures are kept (bounded) so tests can assert the simulator stayed healthy."""
        if len(self.errors) < 200:
            self.errors.append(message)


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: str) -> float:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
