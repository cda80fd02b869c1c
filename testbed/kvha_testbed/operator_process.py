"""Run the real kvha operator (`python -m kvha run`) as a child process against the testbed.

A separate process, not kopf's in-thread runner: tests must be able to SIGKILL it in the middle of
an incident (crash safety), run two replicas (leader election), and run it with only the Helm
chart's RBAC; all three need it to be exactly what a pod would run.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from kvha_testbed.kube import KubeClient
from kvha_testbed.procs import ManagedProcess, free_port
from kvha_testbed.waiting import wait_for

NAMESPACE = "kvha-system"


def ensure_namespace(client: KubeClient, name: str = NAMESPACE) -> None:
    client.create_or_get("/api/v1/namespaces", {"metadata": {"name": name}})


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: Path,
        *,
        identity: str = "kvha-0",
        namespace: str = NAMESPACE,
        lease_seconds: int = 6,
        env: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
        as_pod: bool = False,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.identity = identity
        self.port = free_port()
        log_dir = log_dir or Path(tempfile.mkdtemp(prefix="kvha-operator-"))
        self.log_path = log_dir / f"{identity}.log"
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "KVHA_NAMESPACE": namespace,
            "POD_NAME": identity,
            "KVHA_HTTP_HOST": "127.0.0.1",
            "KVHA_HTTP_PORT": str(self.port),
            "KVHA_LEASE_SECONDS": str(lease_seconds),
            # Tests tick faster than kvha's defaults; `as_pod` keeps what the chart's pod runs.
            **({} if as_pod else {"KVHA_POLICY_INTERVAL": "1", "KVHA_FAILOVER_INTERVAL": "0.5"}),
            **(env or {}),
        }
        self.verbose = not as_pod
        self.proc: ManagedProcess | None = None

    def start(self, *, wait_leader: bool = True, timeout: float = 60.0) -> OperatorProcess:
        self.proc = ManagedProcess(
            name=f"kvha operator {self.identity}",
            argv=[sys.executable, "-m", "kvha", "run", *(["--verbose"] if self.verbose else [])],
            log_path=self.log_path,
            env=self.env,
        ).start()
        wait_for(self._healthy, what=f"operator {self.identity} to serve /healthz", timeout=timeout, show=self.log_tail)
        if wait_leader:
            self.wait_leader(timeout=timeout)
        return self

    def wait_leader(self, timeout: float = 60.0) -> None:
        wait_for(
            lambda: self.metric("kvha_leader") == 1.0,
            what=f"operator {self.identity} to lead",
            timeout=timeout,
            show=self.log_tail,
        )

    def _healthy(self) -> bool:
        if self.proc is not None:
            self.proc.check_alive()
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as resp:
            return bool(resp.status == 200)

    def ready(self) -> bool:
        """What the kubelet's readiness probe would see (/readyz answers 503 when not ready)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as resp:
                return bool(resp.status == 200)
        except urllib.error.HTTPError:
            return False

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of one sample, or None when it is not exported (yet)."""
        wanted = dict(labels.items())
        for line in self.metrics_text().splitlines():
            match = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)$", line)
            if not match or match.group(1) != name:
                continue
            found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
            if all(found.get(k) == v for k, v in wanted.items()):
                return float(match.group(4))
        return None

    def kill(self) -> None:
        """SIGKILL, as a node crash or OOM kill would: no lease release, no cleanup."""
        if self.proc is not None and self.proc.pid is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.stop(grace=0)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(grace=10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    @property
    def exit_code(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return self.proc.log_tail(lines) if self.proc else ""

    def __enter__(self) -> OperatorProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
