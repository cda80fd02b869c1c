"""pytest plugin: one real testbed per session, a fresh namespace and fresh nodes per test.

Registered in tests/conftest.py (`pytest_plugins = ["kvha_testbed.fixtures"]`). Fixtures:

* `plane` (session): the started `Testbed` - control plane, kwok, KubeVirt's real virt-controller
  and virt-api, the simulated virt-handler, faults (`KVHA_TESTBED_KUBEVIRT=simulated`: the
  fallback with a simulated virt-controller).
  Starting it builds missing binaries first (tens of minutes cold; run `python -m kvha_testbed.cli build` in CI
  before pytest). If it cannot start, every test using it fails with the reason: integration tests
  never skip.
* `kube` (session): the testbed's admin JSON client (`kvha_testbed.kube.KubeClient`).
* `api_client`, `core_api`, `custom_api` (session): the official `kubernetes` client as admin.
* `sim`, `ledger`, `faults`, `fence_agent` (session): shortcuts into `plane`.
* `namespace` (function): a new namespace, deleted (pods force-deleted) after the test.
* `nodes` (function): factory `nodes(count=1, *, cpu=8, memory="32Gi", labels=None, taints=())`
  -> list of node names, Ready and `kubevirt.io/schedulable=true`; deleted after the test, so
  each test sees exactly the capacity it created.

After each test using `namespace` or `nodes`, the testbed's processes must still be alive and the
simulator must not have logged unexpected errors; otherwise the teardown fails loudly.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest

from kvha_testbed.build import ensure_built
from kvha_testbed.faults import Faults
from kvha_testbed.kube import NAMESPACES, NODES, PODS, KubeClient
from kvha_testbed.scenario import Scenario
from kvha_testbed.sim.context import Power
from kvha_testbed.sim.fence_agent import FenceAgent
from kvha_testbed.sim.ledger import GuestLedger
from kvha_testbed.sim.simulator import KubeVirtSimulator
from kvha_testbed.testbed import Testbed

_counter = itertools.count(1)
NodeFactory = Callable[..., list[str]]


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:limit].strip("-") or "t"


@pytest.fixture(scope="session")
def plane() -> Iterator[Testbed]:
    problem = ""
    bed = None
    try:
        bed = Testbed(ensure_built()).start()
    except SystemExit as error:  # build.py reports failures with SystemExit
        problem = f"testbed binaries could not be built: {error}"
    except Exception as error:  # any start failure must fail the tests, with its reason
        problem = f"the testbed did not start: {type(error).__name__}: {error}"
    if bed is None:
        pytest.fail(problem, pytrace=False)  # outside `except`: no chained tracebacks in the report
    if os.environ.get("KVHA_TESTBED_VERBOSE"):
        print(bed.summary())  # opt-in diagnostics
    yield bed
    bed.stop()


@pytest.fixture(scope="session")
def kube(plane: Testbed) -> KubeClient:
    return plane.client


@pytest.fixture(scope="session")
def api_client(plane: Testbed) -> Iterator[Any]:
    client = plane.kubernetes_client()
    yield client
    client.close()


@pytest.fixture(scope="session")
def core_api(api_client: Any) -> Any:
    import kubernetes  # noqa: PLC0415 - only tests that use the official client import it

    return kubernetes.client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def custom_api(api_client: Any) -> Any:
    import kubernetes  # noqa: PLC0415

    return kubernetes.client.CustomObjectsApi(api_client)


@pytest.fixture(scope="session")
def sim(plane: Testbed) -> KubeVirtSimulator:
    return plane.sim


@pytest.fixture(scope="session")
def ledger(plane: Testbed) -> GuestLedger:
    return plane.ledger


@pytest.fixture(scope="session")
def faults(plane: Testbed) -> Faults:
    return plane.faults


@pytest.fixture(scope="session")
def fence_agent(sim: KubeVirtSimulator) -> FenceAgent:
    return sim.fence_agent


@pytest.fixture
def namespace(plane: Testbed, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"{_slug(request.node.name, 40)}-{next(_counter)}"
    labels = {"kvha-testbed/test": "true"}
    plane.client.create(NAMESPACES.path(), {"metadata": {"name": name, "labels": labels}})
    yield name
    plane.client.delete(NAMESPACES.path(name=name))
    # Pods on dead nodes would keep the namespace Terminating forever; nobody needs them now.
    pods, _ = plane.client.list(PODS.path(name))
    for pod in pods:
        plane.client.delete(PODS.path(name, pod["metadata"]["name"]), grace_seconds=0)
    plane.check_health()


@pytest.fixture
def nodes(plane: Testbed, request: pytest.FixtureRequest) -> Iterator[NodeFactory]:
    created: list[str] = []
    prefix = _slug(request.node.name, 30)

    def make(
        count: int = 1,
        *,
        cpu: str | int = 8,
        memory: str = "32Gi",
        labels: Mapping[str, str] | None = None,
        taints: Sequence[Mapping[str, Any]] = (),
    ) -> list[str]:
        names = [f"{prefix}-{next(_counter)}" for _ in range(count)]
        for name in names:
            plane.add_node(name, cpu=cpu, memory=memory, labels=labels, taints=taints)
            created.append(name)
        return names

    yield make
    for name in created:
        plane.client.delete(NODES.path(name=name))
        plane.sim.power.set(name, Power.UP)
    plane.check_health()


@pytest.fixture
def scenario(plane: Testbed, namespace: str, nodes: NodeFactory) -> Iterator[Scenario]:
    """A failover scenario: this test's nodes and namespace, its own HAPolicy, and operators.

    Whatever the test asserts, no VM may have run twice at any moment of it: the split-brain
    ledger is checked when the scenario ends, for every scenario."""
    label = namespace[:50]
    scene = Scenario(bed=plane, namespace=namespace, label=label, make_nodes=nodes, policy_name=f"p-{label}"[:60])
    started = time.time()  # the ledger's clock
    yield scene
    scene.cleanup()
    plane.ledger.assert_no_split_brain(since=started)
