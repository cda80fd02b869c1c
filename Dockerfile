# kvha operator image.
#
#   docker build -t ghcr.io/kvha/kvha:0.1.0 .
#
# Two stages: the first builds the wheel from pyproject.toml and installs it with its dependencies
# into a virtual environment; the second is the same slim Python with only that environment, run
# as an unprivileged user. The chart (charts/kvha) relies on the ENTRYPOINT, CMD, USER and port
# below; tests/unit/install/test_install_dockerfile.py and tests/integration/chart/test_chart_image.py keep the two in step.
#
# The base is pinned by version; release builds should also pin it by digest
# (python:3.11.14-slim-bookworm@sha256:...) and let a bot bump it.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m pip install "build==1.2.2.post1"
# Only what the wheel is made of, so editing tests or docs does not invalidate this layer.
COPY pyproject.toml README.md ./
COPY operator/ operator/
# Bytecode is compiled here: at runtime the root filesystem is read-only and nothing is written.
RUN python -m build --wheel --outdir /dist \
 && python -m venv /opt/kvha \
 && /opt/kvha/bin/pip install /dist/kvha-*.whl \
 && /opt/kvha/bin/python -m compileall -q /opt/kvha/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="kvha" \
      org.opencontainers.image.description="High availability for KubeVirt virtual machines" \
      org.opencontainers.image.source="https://github.com/kvha/kvha" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/kvha/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/kvha /opt/kvha
# 65532 is the conventional "nonroot" uid/gid (distroless); the chart's securityContext uses it.
USER 65532:65532
EXPOSE 8080
# Exec form: no shell is involved at runtime. `kvha` is the console script of the wheel.
ENTRYPOINT ["kvha"]
CMD ["run", "--log-format", "json"]
