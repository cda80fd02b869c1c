"""Generate kvha's CustomResourceDefinitions from the pydantic models.

The models are the one source of truth; this module turns their JSON Schema into valid structural
OpenAPI v3 schemas for the apiserver: references inlined, `title` dropped, `anyOf [X, null]`
folded into `nullable`, int-or-string marked, condition lists keyed by type, objects that have
defaults given `default: {}` so the apiserver fills in nested defaults, and CEL rules kept.

`python -m kvha.crdgen` rewrites `crds/`; `python -m kvha.crdgen --check` fails on drift (CI).
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from kvha.constants import GROUP, VERSION
from kvha.models.hapolicy import HAPolicySpec, HAPolicyStatus
from kvha.models.nodefailover import NodeFailoverSpec, NodeFailoverStatus

Schema = dict[str, Any]

# Keys that JSON Schema allows but a structural CRD schema rejects or does not need.
_DROPPED_KEYS = {"title", "$defs", "discriminator"}


@dataclass(frozen=True)
class CrdSpec:
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    spec_model: type[BaseModel]
    status_model: type[BaseModel]
    printer_columns: tuple[Schema, ...]
    spec_rules: tuple[Schema, ...] = ()
    description: str = ""

    @property
    def name(self) -> str:
        return f"{self.plural}.{GROUP}"


def _resolve(node: Any, defs: dict[str, Schema]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].split("/")[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        target.update(extra)  # a field's own description/default wins over the class docstring
        return _resolve(target, defs)
    return {key: _resolve(value, defs) for key, value in node.items() if key not in _DROPPED_KEYS}


def _fold_nullable(node: Schema) -> Schema:
    options = node.get("anyOf")
    if isinstance(options, list) and any(opt.get("type") == "null" for opt in options):
        rest = [opt for opt in options if opt.get("type") != "null"]
        merged = {k: v for k, v in node.items() if k != "anyOf"}
        if len(rest) == 1:
            merged = {**rest[0], **merged}
        else:
            merged["anyOf"] = rest
        merged["nullable"] = True
        if merged.get("default", "absent") is None:
            del merged["default"]
        return merged
    return node


def _structural(node: Any, *, top: bool = False) -> Any:
    """Rewrite a resolved JSON Schema node into a structural one, depth first."""
    if isinstance(node, list):
        return [_structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = _fold_nullable(node)
    out: Schema = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _structural(prop) for name, prop in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _structural(value)
        elif key == "anyOf":
            out[key] = [_structural(opt) for opt in value]
        else:
            out[key] = value
    _add_markers(out)
    if top:
        out.pop("default", None)
    return out


def _add_markers(out: Schema) -> None:
    """The Kubernetes-specific parts JSON Schema has no words for."""
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    if out.get("type") == "object" and "properties" in out:
        required = set(out.get("required", []))
        for name, prop in out["properties"].items():
            if (
                prop.get("type") == "object"
                and name not in required
                and not prop.get("nullable")
                and "default" not in prop
            ):
                prop["default"] = {}
    if out.get("type") == "array" and isinstance(out.get("items"), dict):
        item_props = out["items"].get("properties", {})
        if set(item_props) >= {"type", "status", "lastTransitionTime", "reason"}:
            out["x-kubernetes-list-type"] = "map"
            out["x-kubernetes-list-map-keys"] = ["type"]


def model_schema(model: type[BaseModel]) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    _add_computed_fields(raw, model)
    defs = raw.get("$defs", {})
    resolved = _resolve(raw, defs)
    return _structural(resolved, top=True)  # type: ignore[no-any-return]


def _add_computed_fields(raw: Schema, model: type[BaseModel]) -> None:
    """Computed fields are written with the object but never parsed, so the validation schema
    leaves them out; the apiserver would prune them. Only the model's own (top-level) ones."""
    written = model.model_json_schema(by_alias=True, mode="serialization")["properties"]
    for name, field in model.model_computed_fields.items():
        alias = field.alias or name
        prop = {key: value for key, value in written[alias].items() if key != "readOnly"}
        raw.setdefault("properties", {})[alias] = prop


def crd(spec: CrdSpec) -> Schema:
    spec_schema = model_schema(spec.spec_model)
    if spec.spec_rules:
        spec_schema["x-kubernetes-validations"] = list(spec.spec_rules)
    status_schema = model_schema(spec.status_model)
    spec_schema.pop("description", None)
    status_schema.pop("description", None)
    spec_schema["description"] = f"Desired state of the {spec.kind}."
    status_schema["description"] = f"Observed state of the {spec.kind}, written by the kvha operator."
    root: Schema = {
        "type": "object",
        "description": spec.description,
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
        "required": ["spec"],
    }
    if not spec_schema.get("required"):
        root["properties"]["spec"]["default"] = {}
        root.pop("required")
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": spec.name,
            "labels": {"app.kubernetes.io/name": "kvha", "app.kubernetes.io/part-of": "kvha"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {
                "kind": spec.kind,
                "listKind": f"{spec.kind}List",
                "plural": spec.plural,
                "singular": spec.singular,
                "shortNames": list(spec.short_names),
                "categories": ["kvha"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": list(spec.printer_columns),
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def _column(name: str, path: str, kind: str = "string", *, priority: int = 0, description: str = "") -> Schema:
    column: Schema = {"name": name, "type": kind, "jsonPath": path}
    if priority:
        column["priority"] = priority
    if description:
        column["description"] = description
    return column


AGE = _column("Age", ".metadata.creationTimestamp", "date")

HAPOLICY = CrdSpec(
    kind="HAPolicy",
    plural="hapolicies",
    singular="hapolicy",
    short_names=("hap",),
    spec_model=HAPolicySpec,
    status_model=HAPolicyStatus,
    description="HAPolicy says which KubeVirt VMs kvha protects, and how it detects, fences and restarts.",
    printer_columns=(
        _column("Fencing", ".spec.fencing.strategy"),
        _column("Protected", ".status.protectedVms", "integer"),
        _column("Unprotectable", ".status.unprotectableVms", "integer"),
        _column(
            "Tolerates",
            ".status.failoverCapacity",
            "integer",
            description="Host failures the cluster can absorb for the protected VMs now",
        ),
        _column("Active", ".status.activeFailoverCount", "integer", description="Failovers in progress"),
        _column("Ready", '.status.conditions[?(@.type=="Ready")].status'),
        _column("Capacity", '.status.conditions[?(@.type=="FailoverCapacitySufficient")].status', priority=1),
        _column("Storm", '.status.conditions[?(@.type=="StormGuardActive")].status', priority=1),
        AGE,
    ),
)

NODEFAILOVER = CrdSpec(
    kind="NodeFailover",
    plural="nodefailovers",
    singular="nodefailover",
    short_names=("nf", "nfo"),
    spec_model=NodeFailoverSpec,
    status_model=NodeFailoverStatus,
    description="NodeFailover records one node incident: detection, fencing and each VM's restart.",
    spec_rules=({"rule": "self == oldSelf", "message": "spec is immutable: it records what was detected"},),
    printer_columns=(
        _column("Node", ".spec.nodeName"),
        _column("Phase", ".status.phase"),
        _column("Restored", ".status.restored", "integer"),
        _column("Total", ".status.total", "integer"),
        _column("Waiting", ".status.waiting", "integer", description="VMs waiting for capacity"),
        _column("Policy", ".spec.policyName", priority=1),
        _column("Reason", ".spec.reason", priority=1),
        _column("Message", ".status.message", priority=1),
        AGE,
    ),
)

ALL = (HAPOLICY, NODEFAILOVER)


def render(spec: CrdSpec) -> str:
    header = "# Generated by `python -m kvha.crdgen` from operator/kvha/models. Do not edit.\n"
    return header + yaml.safe_dump(crd(spec), sort_keys=False, width=120)


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in ALL:
        path = directory / f"{spec.name}.yaml"
        path.write_text(render(spec))
        written.append(path)
    return written


def drift(directory: Path) -> list[str]:
    """Names of CRD files whose content differs from what the models generate."""
    return [
        spec.name
        for spec in ALL
        if not (directory / f"{spec.name}.yaml").exists()
        or (directory / f"{spec.name}.yaml").read_text() != render(spec)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate kvha CRDs from the pydantic models.")
    parser.add_argument("--dir", type=Path, default=Path("crds"))
    parser.add_argument("--check", action="store_true", help="fail if the files differ from the models")
    args = parser.parse_args(argv)
    if args.check:
        stale = drift(args.dir)
        if stale:
            print(f"CRDs out of date: {', '.join(stale)}; run python -m kvha.crdgen", file=sys.stderr)
            return 1
        return 0
    for path in write_all(args.dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
