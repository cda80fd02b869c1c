"""Fixtures for the install tests: the chart rendered with `helm template` (no cluster needed)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest
from install_testing import VALUES, Manifest, parse, render_bundle


@pytest.fixture(scope="session")
def chart() -> ModuleType:
    """hack/render_bundle.py: `helm(...)`, `template(...)`, `render_bundle()`, the paths."""
    return render_bundle


@pytest.fixture(scope="session")
def render() -> Callable[..., Manifest]:
    """Render the chart with values files from tests/unit/install/values/ and --set items."""

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
