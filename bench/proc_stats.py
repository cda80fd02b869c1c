"""What a process tree costs, read from /proc: resident memory and CPU time.

The benchmarks measure the operator and the testbed's own processes apart, each as a tree (a
process and its children), so one module reads /proc for all of them.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from kvha_testbed.procs import live_processes

TICKS = os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def descendants(roots: set[int]) -> set[int]:
    """`roots` and every process below them."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = set(roots), set(roots)
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (its threads included), 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def tree_rss(pid: int) -> int:
    return sum(rss_bytes(p) for p in descendants({pid}))


def tree_cpu(pid: int) -> float:
    return sum(cpu_seconds(p) for p in descendants({pid}))


OWN = "python (bench + simulator)"


def testbed_pids() -> dict[str, int]:
    """The testbed's processes by name (apiserver, etcd, kwok, ...; operators left out) and this
    Python process, which runs the simulated virt-handler and the fence agent."""
    pids = {
        proc.name: proc.pid
        for proc in live_processes()
        if proc.pid is not None and not proc.name.startswith("kvha operator")
    }
    pids[OWN] = os.getpid()
    return pids


def testbed_rss() -> dict[str, int]:
    # This process alone: its tree would hold every testbed process again.
    return {name: rss_bytes(pid) if name == OWN else tree_rss(pid) for name, pid in testbed_pids().items()}


def testbed_cpu() -> dict[str, float]:
    return {name: cpu_seconds(pid) if name == OWN else tree_cpu(pid) for name, pid in testbed_pids().items()}


class RssSampler:
    """Peak resident memory of a process tree, sampled every second in the background."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.peak = max(self.peak, tree_rss(self.pid))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak
