"""Helpers of the install tests: the chart rendered with `helm template` and found in by kind.

Rendering goes through hack/render_bundle.py, the same code that writes deploy/kvha.yaml, so the
tests see exactly what users install.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
VALUES = Path(__file__).parent / "values"

if str(ROOT / "hack") not in sys.path:
    sys.path.insert(0, str(ROOT / "hack"))

import render_bundle  # noqa: E402 - hack/ is not a package; it is put on the path just above

Manifest = list[dict[str, Any]]

__all__ = ["ROOT", "VALUES", "Manifest", "find", "parse", "render_bundle"]


def parse(text: str) -> Manifest:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find(docs: Manifest, kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]
