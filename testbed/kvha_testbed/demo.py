"""`make demo`: a local cluster where a host fails and kvha brings its VMs back.

Starts the testbed (real control plane, kwok hosts, simulated KubeVirt), a small virtualised
cluster with VMs of mixed sizes and priorities, an HAPolicy and the operator; fails a host; shows
the incident live; ends with a timeline table and a PNG picture of it. Everything is cleaned up on
exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kvha.console.timeline import from_failover, render_table
from kvha_testbed.build import ensure_built
from kvha_testbed.operator_process import OperatorProcess
from kvha_testbed.scenario import FENCE_CONFIRMED, Scenario
from kvha_testbed.testbed import KubeVirtMode, Testbed, TestbedConfig
from kvha_testbed.timeline import render_png
from kvha_testbed.waiting import wait_for

# (vCPUs, guest memory, priority, run strategy): a typical mix of a virtualised estate.
VM_MIX = (
    (4, "32Gi", "Highest", "Always"),  # databases
    (2, "16Gi", "High", "Always"),  # application servers
    (2, "8Gi", "High", "RerunOnFailure"),
    (1, "4Gi", "Medium", "Always"),  # web front ends
    (2, "16Gi", "Medium", "Always"),
    (1, "8Gi", "Low", "Always"),  # batch
    (4, "48Gi", "Lowest", "Always"),  # analytics sandboxes
)
NAMES = {"Highest": "db", "High": "app", "Medium": "web", "Low": "batch", "Lowest": "lab"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kvha demo", description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=3, help="number of hosts (default 3)")
    parser.add_argument("--cpu", default="8", help="CPUs per host (default 8)")
    parser.add_argument("--memory", default="192Gi", help="memory per host (default 192Gi)")
    parser.add_argument("--vms", type=int, default=21, help="number of VMs (default 21)")
    parser.add_argument(
        "--fault",
        choices=["power-off", "partition"],
        default="power-off",
        help="power-off: the host and its guests die; partition: the host is cut off, guests live",
    )
    parser.add_argument(
        "--fencing",
        choices=["manual", "remediation"],
        default="manual",
        help="manual: the demo plays the admin who checks the BMC and confirms the host is off, "
        "then kvha applies the out-of-service taint; remediation: a (simulated) medik8s "
        "fence agent powers the host off",
    )
    parser.add_argument(
        "--kubevirt",
        choices=[mode.value for mode in KubeVirtMode],
        default=KubeVirtMode.from_env().value,
        help="real: KubeVirt's own virt-controller and virt-api (default); simulated: the named fallback",
    )
    parser.add_argument("--output", type=Path, default=Path("demo-output"), help="where the timeline PNG goes")
    return parser


class Progress:
    """One live status line on a terminal; a line per change otherwise (CI logs stay readable)."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.last = ""
        self.spinner = itertools.cycle("|/-\\")

    def show(self, text: str, *, prefix: str = "") -> None:
        """`prefix` (a clock) is shown but does not count as a change worth a new log line."""
        if self.tty:
            sys.stdout.write(f"\r\033[K{next(self.spinner)} {prefix}{text}")
            sys.stdout.flush()
        elif text != self.last:
            print(f"  {prefix}{text}", flush=True)
        self.last = text

    def done(self) -> None:
        if self.tty:
            sys.stdout.write("\n")


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


@contextmanager
def _testbed(kubevirt: str) -> Iterator[Testbed]:
    step("Building (or reusing) the control plane binaries")
    assets = ensure_built()
    config = TestbedConfig(kubevirt=KubeVirtMode(kubevirt))
    step(
        "Starting the testbed: etcd, kube-apiserver, controller-manager, scheduler, kwok, "
        + ("KubeVirt's virt-api and virt-controller" if config.kubevirt is KubeVirtMode.REAL else "SIMULATED KubeVirt")
    )
    started = time.monotonic()
    with Testbed(assets, config) as bed:
        print(f"    ready in {time.monotonic() - started:.1f}s; kubeconfig {bed.kubeconfig}", flush=True)
        yield bed


def _fencing_spec(args: argparse.Namespace, scene: Scenario) -> dict[str, Any]:
    if args.fencing == "manual":
        return {"strategy": "OutOfServiceTaint", "confirmation": "Manual"}
    scene.kube.create_or_get(
        f"/apis/self-node-remediation.medik8s.io/v1alpha1/namespaces/{scene.namespace}/selfnoderemediationtemplates",
        {
            "apiVersion": "self-node-remediation.medik8s.io/v1alpha1",
            "kind": "SelfNodeRemediationTemplate",
            "metadata": {"name": "power-off", "namespace": scene.namespace},
            "spec": {"template": {"spec": {"remediationStrategy": "OutOfServiceTaint"}}},
        },
    )
    return {
        "strategy": "Remediation",
        "remediationTemplate": {
            "apiVersion": "self-node-remediation.medik8s.io/v1alpha1",
            "kind": "SelfNodeRemediationTemplate",
            "name": "power-off",
            "namespace": scene.namespace,
        },
    }


def _create_vms(scene: Scenario, count: int) -> list[str]:
    names = []
    serial: dict[str, int] = {}
    for index in range(count):
        cpu, memory, priority, strategy = VM_MIX[index % len(VM_MIX)]
        serial[priority] = serial.get(priority, 0) + 1
        name = f"{NAMES[priority]}-{serial[priority]:02d}"
        scene.vm(name, priority=priority, cpu=cpu, memory=memory, run_strategy=strategy)
        names.append(name)
    progress = Progress()
    for name in names:
        progress.show(f"waiting for {name} to run")
        scene.bed.wait_vm_status(scene.namespace, name, "Running", timeout=120)
    progress.done()
    return names


def _placement(scene: Scenario, names: list[str]) -> dict[str, list[str]]:
    by_host: dict[str, list[str]] = {}
    for name in names:
        vmi = scene.bed.vmi(scene.namespace, name)
        if vmi:
            by_host.setdefault(vmi["status"].get("nodeName", "?"), []).append(name)
    return by_host


def _watch(scene: Scenario, *, failed: str, failed_at: float, manual: bool) -> dict[str, Any]:
    progress = Progress()
    confirmed = False
    while True:
        elapsed = time.monotonic() - failed_at
        found = scene.failovers()
        if not found:
            progress.show(
                f"host {failed} silent; waiting for the controller-manager and kvha's detection thresholds",
                prefix=f"t={elapsed:5.1f}s  ",
            )
        else:
            status = found[0].get("status") or {}
            phase = status.get("phase", "Detected")
            progress.show(
                f"{phase:<10} restored {status.get('restored', 0)}/{status.get('total', 0)}"
                f"  waiting {status.get('waiting', 0)}  {status.get('message', '')[:90]}",
                prefix=f"t={elapsed:5.1f}s  ",
            )
            if manual and phase == "Fencing" and not confirmed:
                progress.done()
                incident = found[0]["metadata"]["name"]
                print(
                    f"    [admin] checked the BMC: {failed} is off -> kubectl annotate node {failed} "
                    f"kvha.io/fence-confirmed={incident} --overwrite",
                    flush=True,
                )
                scene.annotate_node(failed, FENCE_CONFIRMED, incident)
                confirmed = True
            if phase in ("Completed", "Aborted", "Failed"):
                progress.done()
                return found[0]
        if elapsed > 600:
            progress.done()
            raise SystemExit("the failover did not finish within 10 minutes")
        time.sleep(0.5)


def run(args: argparse.Namespace) -> int:
    with _testbed(args.kubevirt) as bed:
        scene = Scenario.standalone(bed, "demo", host_prefix="host")
        try:
            step(f"Creating {args.hosts} hosts of {args.cpu} CPUs and {args.memory}")
            scene.nodes(args.hosts, cpu=args.cpu, memory=args.memory)
            step(f"Creating {args.vms} VMs of mixed sizes and priorities")
            names = _create_vms(scene, args.vms)
            for host, vms in sorted(_placement(scene, names).items()):
                print(f"    {host}: {', '.join(sorted(vms))}")
            step(f"Installing an HAPolicy (fencing: {args.fencing}) and starting the kvha operator")
            scene.policy(
                fencing=_fencing_spec(args, scene),
                restart={"maxParallel": 4, "tierOrdering": "WaitForReady", "tierTimeout": "60s"},
            )
            operator = OperatorProcess(bed.kubeconfig, identity="kvha-demo")
            scene.operators.append(operator)
            from kvha_testbed.operator_process import ensure_namespace  # noqa: PLC0415

            ensure_namespace(bed.client)
            operator.start()
            status = wait_for(
                lambda: scene.policy_status().get("failoverCapacity") is not None, what="the policy's first evaluation"
            )
            policy = scene.policy_status()
            print(
                f"    protecting {policy.get('protectedVms')} VMs; the cluster can absorb "
                f"{policy.get('failoverCapacity')} host failure(s) now",
                flush=True,
            )
            del status
            victim = max(_placement(scene, names).items(), key=lambda item: len(item[1]))[0]
            step(f"Failing {victim} ({args.fault})")
            failed_wall = datetime.now(UTC)
            failed_at = time.monotonic()
            if args.fault == "power-off":
                bed.faults.power_off(victim)
            else:
                bed.faults.partition(victim)
            failover = _watch(scene, failed=victim, failed_at=failed_at, manual=args.fencing == "manual")
            step(f"NodeFailover {failover['metadata']['name']}: {failover['status'].get('message')}")
            timeline = from_failover(failover, failed_at=failed_wall)
            print(render_table(timeline))
            args.output.mkdir(parents=True, exist_ok=True)
            (args.output / "nodefailover.json").write_text(json.dumps(failover, indent=1))
            picture = render_png(timeline, args.output / "timeline.png")
            print(f"\n    timeline picture: {picture}; the NodeFailover as JSON: {args.output / 'nodefailover.json'}")
            split = bed.ledger.split_brain_events()
            print(f"    split-brain check: {split if split else 'NONE - no VM ever ran twice'}")
            return 0 if not split and failover["status"]["phase"] == "Completed" else 1
        finally:
            step("Cleaning up")
            scene.cleanup()


def main(argv: list[str] | None = None) -> int:
    return run(_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
