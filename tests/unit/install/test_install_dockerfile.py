"""The chart runs the image the Dockerfile builds, the way the Dockerfile means it to run.

There is no Docker here, so the image is never built in CI; these checks read the Dockerfile and
compare it with the rendered Deployment: repository (from the OCI source label, as GHCR links
them), version, entrypoint and arguments, user and port.
"""

from __future__ import annotations

import json
import re
import tomllib

import pytest
from install_testing import ROOT, Manifest, find

DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _one(keyword: str) -> str:
    values = [rest for k, rest in _final_stage() if k == keyword]
    assert len(values) == 1, f"expected one {keyword} in the final stage, found {values}"
    return values[0]


def _labels() -> dict[str, str]:
    text = " ".join(rest for k, rest in _final_stage() if k == "LABEL")
    return dict(re.findall(r'([\w.-]+)="([^"]*)"', text))


def _container(docs: Manifest) -> dict[str, object]:
    container: dict[str, object] = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return container


def test_base_image_is_a_pinned_slim_python_311() -> None:
    arg = next(rest for k, rest in _instructions() if k == "ARG" and rest.startswith("PYTHON_IMAGE="))
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", arg), arg
    stages = [rest for k, rest in _instructions() if k == "FROM"]
    assert len(stages) == 2, "multi-stage: build, then runtime"
    assert all(stage.startswith("${PYTHON_IMAGE}") for stage in stages)


def test_wheel_is_built_from_pyproject() -> None:
    build = " ".join(rest for k, rest in _instructions() if k in ("RUN", "COPY"))
    assert "pyproject.toml" in build
    assert "python -m build --wheel" in build
    assert "pip install /dist/kvha-*.whl" in build
    assert "COPY --from=build /opt/kvha /opt/kvha" in " ".join(f"{k} {r}" for k, r in _final_stage())


def test_runtime_is_unprivileged_and_read_only_friendly() -> None:
    assert _one("USER") == "65532:65532"
    env = " ".join(rest for k, rest in _final_stage() if k == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert not [rest for k, rest in _final_stage() if k == "RUN"], "the runtime stage runs nothing (no shell)"


def test_entrypoint_and_cmd_are_exec_form() -> None:
    assert json.loads(_one("ENTRYPOINT")) == ["kvha"]
    assert json.loads(_one("CMD")) == ["run", "--log-format", "json"]


def test_chart_runs_the_image_as_built(defaults: Manifest) -> None:
    container = _container(defaults)
    pod = find(defaults, "Deployment")["spec"]["template"]["spec"]
    source = _labels()["org.opencontainers.image.source"]
    assert source.startswith("https://github.com/")
    repository, tag = str(container["image"]).rsplit(":", 1)
    assert repository == "ghcr.io/" + source.removeprefix("https://github.com/")
    assert tag == _labels()["org.opencontainers.image.version"]
    assert "command" not in container, "the chart must not bypass the image's ENTRYPOINT"
    assert container["args"] == json.loads(_one("CMD"))
    user, group = (int(part) for part in _one("USER").split(":"))
    assert pod["securityContext"]["runAsUser"] == user
    assert pod["securityContext"]["runAsGroup"] == group
    assert container["ports"] == [{"name": "http", "containerPort": int(_one("EXPOSE")), "protocol": "TCP"}]


@pytest.mark.parametrize("source", ["pyproject", "chart"])
def test_versions_agree(chart: object, source: str) -> None:
    """pyproject, the chart's appVersion and the image label name one release."""
    import yaml  # noqa: PLC0415

    label = _labels()["org.opencontainers.image.version"]
    if source == "pyproject":
        assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"] == label
    else:
        assert yaml.safe_load((ROOT / "charts" / "kvha" / "Chart.yaml").read_text())["appVersion"] == label


def test_console_script_exists() -> None:
    """ENTRYPOINT kvha is the wheel's console script."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kvha"] == "kvha.cli:main"
