"""The chart runs the image the Dockerfile builds, the way the Dockerfile means it to run.

There is no Docker here, so the image is never built in CI; this reads the Dockerfile and compares
it with the rendered Deployment: repository (from the OCI source label, as GHCR links them),
version, entrypoint and arguments, user and port.
"""

from __future__ import annotations

import json

from install_testing import Manifest, dockerfile_instruction, dockerfile_labels, find


def _container(docs: Manifest) -> dict[str, object]:
    container: dict[str, object] = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return container


def test_chart_runs_the_image_as_built(defaults: Manifest) -> None:
    container = _container(defaults)
    pod = find(defaults, "Deployment")["spec"]["template"]["spec"]
    source = dockerfile_labels()["org.opencontainers.image.source"]
    assert source.startswith("https://github.com/")
    repository, tag = str(container["image"]).rsplit(":", 1)
    assert repository == "ghcr.io/" + source.removeprefix("https://github.com/")
    assert tag == dockerfile_labels()["org.opencontainers.image.version"]
    assert "command" not in container, "the chart must not bypass the image's ENTRYPOINT"
    assert container["args"] == json.loads(dockerfile_instruction("CMD"))
    user, group = (int(part) for part in dockerfile_instruction("USER").split(":"))
    assert pod["securityContext"]["runAsUser"] == user
    assert pod["securityContext"]["runAsGroup"] == group
    assert container["ports"] == [
        {"name": "http", "containerPort": int(dockerfile_instruction("EXPOSE")), "protocol": "TCP"}
    ]
