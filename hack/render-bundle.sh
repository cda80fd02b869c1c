#!/usr/bin/env bash
# Regenerate charts/kvha/files/crds/ (a copy of crds/) and deploy/kvha.yaml (the chart rendered with
# its defaults). Run after `make crds` or any chart change; `--check` fails if either is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
[[ -x "$PYTHON" ]] || PYTHON=python3
exec "$PYTHON" hack/render_bundle.py "$@"
