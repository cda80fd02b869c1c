"""End-to-end tests need Docker, kind and a network: they run only when asked with KVHA_E2E=1.

This is the project's one skip. CI has no Docker, so these tests can never run there; the testbed's
integration tests cover the same code paths against a real control plane.
"""

from __future__ import annotations

import os

import pytest

ENABLED = os.environ.get("KVHA_E2E") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(reason="needs Docker + kind + network; run with KVHA_E2E=1 (hack/kind-e2e.sh)")
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(skip)
