"""How expensive is the testbed? Cold build, warm start, and 100 nodes with 2,000 simulated VMs.

    .venv/bin/python bench/testbed_bench.py                 # everything
    .venv/bin/python bench/testbed_bench.py --skip-scale    # build + warm start only

The cold build time is read from build logs (a cold build cannot be repeated cheaply; CI writes
them with `python -m kvha_testbed.cli build > /tmp/build-*.log`). Memory is the resident set of every testbed
process plus this Python process (which runs the KubeVirt simulator), read from /proc
(bench/proc_stats.py).
"""

from __future__ import annotations

import argparse
import re
import statistics
import threading
import time
from datetime import datetime
from pathlib import Path

from kvha_testbed.build import ensure_built
from kvha_testbed.estate import bulk, scale_testbed_config
from kvha_testbed.kube import NAMESPACES, NODES, VMS
from kvha_testbed.kwok import node_manifest, node_ready
from kvha_testbed.objects import vm_manifest
from kvha_testbed.testbed import Testbed
from kvha_testbed.waiting import wait_for
from proc_stats import testbed_rss

_STAMP = re.compile(r"^\[testbed-build (\d\d:\d\d:\d\d)\]")
_READY = re.compile(r"testbed assets ready in (\d+)s")


def cold_build(logs: list[Path]) -> str:
    """Per-log "assets ready in" figures and the wall time from the first to the last log line."""
    figures, stamps = [], []
    for log in logs:
        if not log.exists():
            continue
        for line in log.read_text(errors="replace").splitlines():
            if match := _STAMP.match(line):
                stamps.append(datetime.strptime(match.group(1), "%H:%M:%S"))
            if match := _READY.search(line):
                figures.append(f"{log.name}: {int(match.group(1))}s")
    if not stamps:
        return "not measured (no build logs; run `python -m kvha_testbed.cli build > /tmp/build.log` on a cold cache)"
    wall = (max(stamps) - min(stamps)).total_seconds()
    return f"{wall / 60:.1f} min wall ({', '.join(figures) or 'no summary line'})"


def warm_start(runs: int) -> list[float]:
    assets = ensure_built()
    times = []
    for _ in range(runs):
        started = time.monotonic()
        with Testbed(assets):
            times.append(time.monotonic() - started)
    return times


def scale(node_count: int, vm_count: int) -> None:
    with Testbed(ensure_built(), scale_testbed_config()) as bed:
        client = bed.client
        started = time.monotonic()
        bulk(
            lambda i: client.create(NODES.path(), node_manifest(f"scale-{i:03d}", cpu=64, memory="256Gi", pods=250)),
            node_count,
        )
        wait_for(
            lambda: (
                sum(
                    node_ready(n) and (n["metadata"].get("labels") or {}).get("kubevirt.io/schedulable") == "true"
                    for n in bed.sim.ctx.caches.nodes.items()
                )
                >= node_count
            ),
            what=f"{node_count} nodes Ready and schedulable",
            timeout=300,
            interval=1,
        )
        print(f"  {node_count} nodes ready and schedulable in {time.monotonic() - started:.1f}s", flush=True)

        client.create(NAMESPACES.path(), {"metadata": {"name": "scale"}})
        started = time.monotonic()
        bulk(
            lambda i: client.create(
                VMS.path("scale"), vm_manifest(f"vm-{i:04d}", namespace="scale", cpu=1, memory="1Gi")
            ),
            vm_count,
        )
        created = time.monotonic() - started
        peak: dict[str, int] = {}
        done = threading.Event()

        def sample() -> None:
            while not done.wait(2):
                for name, rss in testbed_rss().items():
                    peak[name] = max(peak.get(name, 0), rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        def running() -> int:
            return sum(
                (vm.get("status") or {}).get("printableStatus") == "Running" for vm in bed.sim.ctx.caches.vms.items()
            )

        last_report = time.monotonic()
        while (count := running()) < vm_count:
            if time.monotonic() - last_report > 15:
                print(f"  ... {count}/{vm_count} Running after {time.monotonic() - started:.0f}s", flush=True)
                last_report = time.monotonic()
            if time.monotonic() - started > 1800:
                raise TimeoutError(f"only {count}/{vm_count} VMs Running after 30 min")
            time.sleep(1)
        elapsed = time.monotonic() - started
        done.set()
        sampler.join()
        steady = testbed_rss()
        print(
            f"  {vm_count} VMs created in {created:.1f}s; all Running after {elapsed:.1f}s "
            f"({vm_count / elapsed:.0f} VMs/s)"
        )
        print(f"  RSS at steady state: {sum(steady.values()) / 2**20:.0f} MiB total")
        for name in sorted(steady, key=steady.__getitem__, reverse=True):
            print(f"    {name:32s} {steady[name] / 2**20:7.0f} MiB   (peak {peak.get(name, 0) / 2**20:.0f} MiB)")
        print(
            f"  peak sum: {sum(peak.values()) / 2**20:.0f} MiB; simulator errors: {len(bed.sim.errors)}; "
            f"split-brain events: {len(bed.ledger.split_brain_events())}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="warm starts to time (median reported)")
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--vms", type=int, default=2000)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument(
        "--build-log", type=Path, action="append", default=[Path("/tmp/build-k8s.log"), Path("/tmp/build-small.log")]
    )
    args = parser.parse_args()

    print(f"cold build: {cold_build(args.build_log)}", flush=True)
    times = warm_start(args.runs)
    print(
        f"warm start to ready (plane + kwok + simulator): median {statistics.median(times):.1f}s "
        f"of {', '.join(f'{t:.1f}s' for t in times)}",
        flush=True,
    )
    if not args.skip_scale:
        print(f"scale: {args.nodes} kwok nodes, {args.vms} VMs", flush=True)
        scale(args.nodes, args.vms)


if __name__ == "__main__":
    main()
