"""Fixtures for installing the chart into the testbed's real API server.

The testbed plugin (kvha_testbed.fixtures, registered in tests/conftest.py) provides `plane`. The
chart is rendered by hack/render_bundle.py, the code that writes deploy/kvha.yaml, and applied with
the testbed's kubectl, as a user would. Every release here has its own name and namespace, so the
tests neither see nor disturb other tests' objects; what they create cluster-wide is removed again.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kvha_testbed.build import resolve_assets
from kvha_testbed.testbed import Testbed

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT / "hack") not in sys.path:
    sys.path.insert(0, str(ROOT / "hack"))

import render_bundle  # noqa: E402 - hack/ is not a package; it is put on the path just above

_counter = itertools.count(1)
Kubectl = Callable[..., str]


@pytest.fixture(scope="session")
def kubectl(plane: Testbed) -> Kubectl:
    """Run the testbed's kubectl as admin (or as `kubeconfig=`); return stdout, raise with stderr."""
    binary = str(resolve_assets().kubectl)

    def run(*args: str, stdin: str | None = None, kubeconfig: Path | None = None, check: bool = True) -> str:
        proc = subprocess.run([binary, f"--kubeconfig={kubeconfig or plane.kubeconfig}", *args], input=stdin,
                              capture_output=True, text=True, timeout=120, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc.stdout + (proc.stderr if not check else "")

    return run


@dataclass
class Release:
    """A rendering of the chart under its own release name and namespace."""

    name: str
    namespace: str
    manifest: str

    @property
    def docs(self) -> list[dict[str, Any]]:
        return [doc for doc in yaml.safe_load_all(self.manifest) if doc]

    def only(self, *kinds: str) -> str:
        return yaml.safe_dump_all([d for d in self.docs if d["kind"] in kinds])

    def find(self, kind: str) -> dict[str, Any]:
        return next(d for d in self.docs if d["kind"] == kind)


@pytest.fixture
def release(plane: Testbed, kubectl: Kubectl) -> Iterator[Callable[..., Release]]:
    """Factory: render the chart for a fresh release (namespace created); cleaned up afterwards."""
    made: list[Release] = []

    def make(prefix: str, *set_values: str, extra: tuple[str, ...] = ()) -> Release:
        name = f"{prefix}-{next(_counter)}"
        kubectl("create", "namespace", name)
        manifest = render_bundle.template(release=name, namespace=name, set_values=set_values, extra=extra)
        made.append(Release(name=name, namespace=name, manifest=manifest))
        return made[-1]

    yield make
    for item in made:
        for doc in item.docs:
            kind, meta = doc["kind"], doc["metadata"]
            if kind in ("ClusterRole", "ClusterRoleBinding"):
                kubectl("delete", kind.lower(), meta["name"], "--ignore-not-found")
            elif kind == "HAPolicy":
                _delete_policy(kubectl, meta["name"])
        kubectl("delete", "namespace", item.namespace, "--ignore-not-found", "--wait=false")
    plane.check_health()


def _delete_policy(kubectl: Kubectl, name: str) -> None:
    """No kvha runs here to honour its finalizer, should anything have added it."""
    kubectl("patch", "hapolicy", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False)
    kubectl("delete", "hapolicy", name, "--ignore-not-found")
