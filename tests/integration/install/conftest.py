"""Fixtures for installing the chart into the testbed's real API server.

The testbed plugin (kvha_testbed.fixtures, registered in tests/conftest.py) provides `plane`. Every
release here has its own name and namespace, so the tests neither see nor disturb other tests'
objects; what they create cluster-wide is removed again.
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from install_cluster import Kubectl, Release, render_bundle

from kvha_testbed.build import resolve_assets
from kvha_testbed.testbed import Testbed

_counter = itertools.count(1)

# What a release creates outside its namespace, and so must delete by name.
CLUSTER_SCOPED = ("ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


@pytest.fixture(scope="session")
def kubectl(plane: Testbed) -> Kubectl:
    """Run the testbed's kubectl as admin (or as `kubeconfig=`); return stdout, raise with stderr."""
    binary = str(resolve_assets().kubectl)

    def run(*args: str, stdin: str | None = None, kubeconfig: Path | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            [binary, f"--kubeconfig={kubeconfig or plane.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc.stdout + (proc.stderr if not check else "")

    return run


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
            if kind in CLUSTER_SCOPED:
                kubectl("delete", kind.lower(), meta["name"], "--ignore-not-found")
            elif kind == "HAPolicy":
                _delete_policy(kubectl, meta["name"])
        kubectl("delete", "namespace", item.namespace, "--ignore-not-found", "--wait=false")
    plane.check_health()


def _delete_policy(kubectl: Kubectl, name: str) -> None:
    """No kvha runs here to honour its finalizer, should anything have added it."""
    kubectl("patch", "hapolicy", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False)
    kubectl("delete", "hapolicy", name, "--ignore-not-found")
