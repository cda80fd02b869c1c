"""The Dockerfile builds a small, unprivileged image of the wheel, and names the release it is.

There is no Docker here, so the image is never built in CI; these checks read the Dockerfile. The
chart's side (it runs the image as built) is in tests/integration/chart, as it needs helm.
"""

from __future__ import annotations

import json
import re
import tomllib

import pytest

from install_testing import (
    ROOT,
    dockerfile_final_stage,
    dockerfile_instruction,
    dockerfile_instructions,
    dockerfile_labels,
)


def test_base_image_is_a_pinned_slim_python_311() -> None:
    arg = next(rest for k, rest in dockerfile_instructions() if k == "ARG" and rest.startswith("PYTHON_IMAGE="))
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", arg), arg
    stages = [rest for k, rest in dockerfile_instructions() if k == "FROM"]
    assert len(stages) == 2, "multi-stage: build, then runtime"
    assert all(stage.startswith("${PYTHON_IMAGE}") for stage in stages)


def test_wheel_is_built_from_pyproject() -> None:
    build = " ".join(rest for k, rest in dockerfile_instructions() if k in ("RUN", "COPY"))
    assert "pyproject.toml" in build
    assert "python -m build --wheel" in build
    assert "pip install /dist/kvha-*.whl" in build
    assert "COPY --from=build /opt/kvha /opt/kvha" in " ".join(f"{k} {r}" for k, r in dockerfile_final_stage())


def test_runtime_is_unprivileged_and_read_only_friendly() -> None:
    assert dockerfile_instruction("USER") == "65532:65532"
    env = " ".join(rest for k, rest in dockerfile_final_stage() if k == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert not [rest for k, rest in dockerfile_final_stage() if k == "RUN"], "the runtime stage runs nothing (no shell)"


def test_entrypoint_and_cmd_are_exec_form() -> None:
    assert json.loads(dockerfile_instruction("ENTRYPOINT")) == ["kvha"]
    assert json.loads(dockerfile_instruction("CMD")) == ["run", "--log-format", "json"]


@pytest.mark.parametrize("source", ["pyproject", "chart"])
def test_versions_agree(chart: object, source: str) -> None:
    """pyproject, the chart's appVersion and the image label name one release."""
    import yaml  # noqa: PLC0415

    label = dockerfile_labels()["org.opencontainers.image.version"]
    if source == "pyproject":
        assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"] == label
    else:
        assert yaml.safe_load((ROOT / "charts" / "kvha" / "Chart.yaml").read_text())["appVersion"] == label


def test_console_script_exists() -> None:
    """ENTRYPOINT kvha is the wheel's console script."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kvha"] == "kvha.cli:main"
