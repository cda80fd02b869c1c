"""The install tests of the unit tier read files only: the chart's sources, never a rendering."""

from __future__ import annotations

from types import ModuleType

import pytest

from install_testing import render_bundle


@pytest.fixture(scope="session")
def chart() -> ModuleType:
    """hack/render_bundle.py as a module: its paths and readers (calling helm is the integration tier's)."""
    return render_bundle
