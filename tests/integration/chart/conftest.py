"""Fixtures for the chart tests: the chart rendered with `helm template`.

No cluster is needed, but helm is a binary the testbed builds, so these tests are integration tier:
`make unit` stays runnable on a machine with nothing built.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from install_testing import Manifest, parse, render_bundle

VALUES = Path(__file__).parent / "values"


@pytest.fixture(scope="session")
def chart() -> ModuleType:
    """hack/render_bundle.py: `helm(...)`, `template(...)`, `render_bundle()`, the paths."""
    return render_bundle


@pytest.fixture(scope="session")
def render() -> Callable[..., Manifest]:
    """Render the chart with values files from tests/integration/chart/values/ and --set items."""

    def _render(
        *values: str,
        set_values: tuple[str, ...] = (),
        extra: tuple[str, ...] = (),
        release: str = render_bundle.RELEASE,
    ) -> Manifest:
        files = [VALUES / f"{name}.yaml" for name in values]
        return parse(render_bundle.template(values_files=files, set_values=set_values, extra=extra, release=release))

    return _render


@pytest.fixture(scope="session")
def defaults(render: Callable[..., Manifest]) -> Manifest:
    return render()
