"""Helpers of the install tests of both tiers: the Dockerfile read as instructions, and the chart
(rendered with `helm template` by the integration tier) parsed and found in by kind.

Rendering goes through hack/render_bundle.py, the same code that writes deploy/kvha.yaml, so the
tests see exactly what users install. Importing it needs no binary; rendering needs helm.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"

if str(ROOT / "hack") not in sys.path:
    sys.path.insert(0, str(ROOT / "hack"))

import render_bundle  # noqa: E402 - hack/ is not a package; it is put on the path just above

Manifest = list[dict[str, Any]]

__all__ = [
    "DOCKERFILE",
    "ROOT",
    "Manifest",
    "dockerfile_final_stage",
    "dockerfile_instruction",
    "dockerfile_instructions",
    "dockerfile_labels",
    "find",
    "parse",
    "render_bundle",
]


def parse(text: str) -> Manifest:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find(docs: Manifest, kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def dockerfile_final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def dockerfile_instruction(keyword: str) -> str:
    """The arguments of the one `keyword` instruction of the final stage."""
    values = [rest for k, rest in dockerfile_final_stage() if k == keyword]
    assert len(values) == 1, f"expected one {keyword} in the final stage, found {values}"
    return values[0]


def dockerfile_labels() -> dict[str, str]:
    text = " ".join(rest for k, rest in dockerfile_final_stage() if k == "LABEL")
    return dict(re.findall(r'([\w.-]+)="([^"]*)"', text))
