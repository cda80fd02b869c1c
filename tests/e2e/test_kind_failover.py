"""A worker of a real kind cluster with KubeVirt is stopped; kvha, installed with its chart, brings
its VMs back on the other workers. The scenario is hack/kind-e2e.sh; this test runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(60 * 60)
def test_stopped_worker_vms_come_back() -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "hack" / "kind-e2e.sh")],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60 * 60,
    )
    assert result.returncode == 0, f"hack/kind-e2e.sh failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    assert "VMs running" in result.stdout
