"""Staging a large estate on the testbed: many kwok nodes, thousands of VMs, and hosts reserved
for the incidents a benchmark or a scale test stages.

A victim host gets its VMs while it is the only schedulable node, then a NoSchedule taint keeps the
fleet's VMs off it, so each incident kills exactly the VMs the benchmark counts on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kvha_testbed.kube import NODES, VMS
from kvha_testbed.kwok import node_manifest, node_ready
from kvha_testbed.objects import vm_manifest
from kvha_testbed.plane import PlaneConfig
from kvha_testbed.scenario import Scenario
from kvha_testbed.sim.context import SimulatorConfig
from kvha_testbed.testbed import Testbed, TestbedConfig
from kvha_testbed.waiting import wait_for

Obj = dict[str, Any]
RESERVED_TAINT = {"key": "kvha-bench/reserved", "value": "true", "effect": "NoSchedule"}


def scale_testbed_config() -> TestbedConfig:
    # Larger fleets: slower heartbeats and leases, so that liveness traffic stays a small share
    # of the load (kwok renews each node Lease every 5 s).
    return TestbedConfig(
        plane=PlaneConfig(node_monitor_grace_period=20),
        simulator=SimulatorConfig(heartbeat_interval=10, heartbeat_timeout=60, node_recheck_interval=10, workers=12),
        lease_duration_seconds=20,
    )


def bulk(func: Callable[[int], object], count: int) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(func, range(count)))


def vm_state(bed: Testbed, namespace: str) -> dict[str, Obj]:
    """VMIs of a namespace by name, from the simulator's watch cache (no API request)."""
    return {
        vmi["metadata"]["name"]: vmi
        for vmi in bed.sim.ctx.caches.vmis.items()
        if vmi["metadata"].get("namespace") == namespace
    }


def wait_running(bed: Testbed, namespace: str, names: Iterable[str], *, timeout: float) -> None:
    wanted = set(names)
    started = time.monotonic()
    last_report = started

    def count() -> int:
        vms = (vm for vm in bed.sim.ctx.caches.vms.items() if vm["metadata"].get("namespace") == namespace)
        return sum(
            vm["metadata"]["name"] in wanted and (vm.get("status") or {}).get("printableStatus") == "Running"
            for vm in vms
        )

    while (running := count()) < len(wanted):
        if time.monotonic() - last_report > 15:
            print(f"    ... {running}/{len(wanted)} VMs Running after {time.monotonic() - started:.0f}s", flush=True)
            last_report = time.monotonic()
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"only {running}/{len(wanted)} VMs of {namespace} Running after {timeout:.0f}s")
        time.sleep(0.5)


def stage_victim(scene: Scenario, tag: str, count: int) -> tuple[str, list[str]]:
    """A host alone with `count` VMs, then reserved (NoSchedule) so the fleet does not land on it."""
    [host] = scene.nodes(1, cpu=64, memory="256Gi")
    names = [f"inc-{tag}-{i:03d}" for i in range(count)]
    bulk(lambda i: scene.vm(names[i], cpu=1, memory="1Gi"), count)
    wait_running(scene.bed, scene.namespace, names, timeout=300)
    scene.kube.patch(NODES.path(name=host), {"spec": {"taints": [RESERVED_TAINT]}})
    return host, names


def stage_fleet(scene: Scenario, *, nodes: int, vms: int, already: int) -> list[str]:
    """`nodes` more nodes of the scenario, then `vms` VMs spread over them by the scheduler;
    `already` is how many of the scenario's nodes exist (to count them all Ready)."""
    client = scene.bed.client
    names = [f"{scene.label}-pool-{i:03d}" for i in range(nodes)]
    started = time.monotonic()
    bulk(
        lambda i: client.create(
            NODES.path(), node_manifest(names[i], cpu=64, memory="256Gi", pods=250, labels={"kvha-test": scene.label})
        ),
        nodes,
    )
    wait_for(
        lambda: (
            sum(
                node_ready(n) and (n["metadata"].get("labels") or {}).get("kubevirt.io/schedulable") == "true"
                for n in scene.bed.sim.ctx.caches.nodes.items()
            )
            >= nodes + already
        ),
        what=f"{nodes} nodes Ready and schedulable",
        timeout=300,
        interval=1,
    )
    print(f"    {nodes} nodes Ready in {time.monotonic() - started:.1f}s", flush=True)
    started = time.monotonic()
    vm_names = [f"vm-{i:04d}" for i in range(vms)]
    bulk(
        lambda i: client.create(
            VMS.path(scene.namespace), vm_manifest(vm_names[i], namespace=scene.namespace, cpu=1, memory="1Gi")
        ),
        vms,
    )
    print(f"    {vms} VMs created in {time.monotonic() - started:.1f}s", flush=True)
    # ~10 VMs a second come up on the 2-core testbed machine: 10,000 take about 17 minutes.
    wait_running(scene.bed, scene.namespace, vm_names, timeout=max(1200.0, 0.3 * vms))
    print(f"    all Running {time.monotonic() - started:.1f}s after creation started", flush=True)
    return names
