"""`python -m kvha_testbed.cli`: build the binaries, or run a testbed by hand until Ctrl-C.

    python -m kvha_testbed.cli build                      # compile/cache everything (CI runs this before pytest)
    python -m kvha_testbed.cli up --nodes 3 --cpu 8 --memory 192Gi
    python -m kvha_testbed.cli up ... --power-off node-2  # start with a fault already injected

`up` prints an `export KUBECONFIG=...` line; kubectl (`kubectl` is in the cache next to the
kube binaries), kopf or the operator can then work against it while the simulated KubeVirt runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

from kvha_testbed import build
from kvha_testbed.plane import PlaneConfig
from kvha_testbed.sim.context import SimulatorConfig
from kvha_testbed.testbed import KubeVirtMode, Testbed, TestbedConfig


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kvha-testbed", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build", help="build or reuse the cached binaries")
    build_cmd.add_argument("components", nargs="*", help=f"default: all of {', '.join(build.RECIPES)}")
    up = commands.add_parser("up", help="start a testbed and keep it running until Ctrl-C")
    up.add_argument("--nodes", type=int, default=3)
    up.add_argument("--cpu", default="8", help="CPU capacity per node")
    up.add_argument("--memory", default="32Gi", help="memory capacity per node")
    up.add_argument("--node-monitor-grace", type=int, default=8, help="seconds until a silent node is Unknown")
    up.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=20.0,
        help="seconds until the simulated virt-controller calls a node unresponsive",
    )
    up.add_argument("--power-off", action="append", default=[], metavar="NODE")
    up.add_argument("--partition", action="append", default=[], metavar="NODE")
    up.add_argument(
        "--kubevirt",
        choices=[mode.value for mode in KubeVirtMode],
        default=KubeVirtMode.from_env().value,
        help="real: KubeVirt's virt-controller and virt-api (default); simulated: the named fallback",
    )
    return parser


def _up(args: argparse.Namespace) -> int:
    mode = KubeVirtMode(args.kubevirt)
    cadence = SimulatorConfig.kubevirt_cadence() if mode is KubeVirtMode.REAL else SimulatorConfig()
    config = TestbedConfig(
        plane=PlaneConfig(node_monitor_grace_period=args.node_monitor_grace, keep_workdir=True),
        kubevirt=mode,
        simulator=replace(cadence, heartbeat_timeout=args.heartbeat_timeout),
        lease_duration_seconds=args.node_monitor_grace,
    )
    bed = Testbed(build.ensure_built(), config)
    try:
        bed.start()
        for index in range(1, args.nodes + 1):
            bed.add_node(f"node-{index}", cpu=args.cpu, memory=args.memory)
        for node in args.power_off:
            bed.faults.power_off(node)
        for node in args.partition:
            bed.faults.partition(node)
        kubectl = bed.control_plane.assets.kubectl
        print(bed.summary(), flush=True)
        print(f"\nexport KUBECONFIG={bed.kubeconfig}\nalias kubectl={kubectl}\n", flush=True)
        print("testbed running; Ctrl-C stops it", flush=True)
        while True:
            time.sleep(5)
            bed.check_health()
    except KeyboardInterrupt:
        print("\nstopping the testbed", flush=True)
        return 0
    finally:
        bed.stop(keep_workdir=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "build":
        assets = build.ensure_built(args.components or None)
        for key, value in assets.__dict__.items():
            print(f"{key}={value}")
        return 0
    return _up(args)


if __name__ == "__main__":
    sys.exit(main())
