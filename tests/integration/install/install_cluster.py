"""Helpers of the install integration tests: the chart rendered for a release of its own.

The chart is rendered by hack/render_bundle.py, the code that writes deploy/kvha.yaml, and applied
with the testbed's kubectl, as a user would.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT / "hack") not in sys.path:
    sys.path.insert(0, str(ROOT / "hack"))

import render_bundle  # noqa: E402 - hack/ is not a package; it is put on the path just above

__all__ = ["Kubectl", "Release", "render_bundle"]

Kubectl = Callable[..., str]


@dataclass
class Release:
    """A rendering of the chart under its own release name and namespace."""

    name: str
    namespace: str
    manifest: str

    @property
    def docs(self) -> list[dict[str, Any]]:
        return [doc for doc in yaml.safe_load_all(self.manifest) if doc]

    def only(self, *kinds: str) -> str:
        return yaml.safe_dump_all([d for d in self.docs if d["kind"] in kinds])

    def find(self, kind: str) -> dict[str, Any]:
        return next(d for d in self.docs if d["kind"] == kind)
