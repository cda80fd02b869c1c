"""Public face of the KubeVirt simulator (the implementation lives in kvha_testbed.sim).

from kvha_testbed.kubevirt_sim import KubeVirtSimulator, launcher_requests
"""

from kvha_testbed.sim.context import Power, SimulatorConfig
from kvha_testbed.sim.fence_agent import FenceAgent, FenceRecord
from kvha_testbed.sim.launcher import launcher_pod, launcher_requests
from kvha_testbed.sim.ledger import GuestLedger, Instance, SplitBrainError, SplitBrainEvent, vm_key
from kvha_testbed.sim.simulator import KubeVirtSimulator

__all__ = [
    "FenceAgent",
    "FenceRecord",
    "GuestLedger",
    "Instance",
    "KubeVirtSimulator",
    "Power",
    "SimulatorConfig",
    "SplitBrainError",
    "SplitBrainEvent",
    "launcher_pod",
    "launcher_requests",
    "vm_key",
]
