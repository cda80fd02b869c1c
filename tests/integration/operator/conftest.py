"""Fixtures for running the real operator against the testbed, one scenario per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from kvha_testbed.scenario import Scenario
from kvha_testbed.testbed import Testbed


@pytest.fixture
def scenario(plane: Testbed, namespace: str, nodes: Callable[..., list[str]]) -> Iterator[Scenario]:
    label = namespace[:50]
    scene = Scenario(bed=plane, namespace=namespace, label=label, make_nodes=nodes, policy_name=f"p-{label}"[:60])
    yield scene
    scene.cleanup()
