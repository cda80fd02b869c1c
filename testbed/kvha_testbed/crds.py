"""Install CustomResourceDefinitions and wait until the API server serves them.

A CRD is usable only once its `Established` condition is true (and, for a fresh group, once
discovery has caught up); creating objects before that fails with 404, which in a test looks like
a bug in the code under test. So the plane installs every CRD up front and waits here.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from pathlib import Path

import yaml

from kvha_testbed.kube import CRDS, KubeClient, KubeError, Obj
from kvha_testbed.waiting import wait_for

TESTBED_CRDS_DIR = Path(__file__).parent / "crds"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_crds(paths: Iterable[Path]) -> list[Obj]:
    """Every CustomResourceDefinition document in the given YAML files (other kinds are skipped)."""
    docs: list[Obj] = []
    for path in paths:
        # libyaml's loader: the KubeVirt CRDs are 1 MB of YAML, two seconds with the pure-Python one.
        for doc in yaml.load_all(path.read_text(), Loader=_LOADER):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                docs.append(doc)
    return docs


def yaml_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def _established(crd: Obj) -> bool:
    conditions = crd.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def apply_crds(client: KubeClient, crds: list[Obj], *, timeout: float = 60.0) -> None:
    """Server-side apply each CRD, then wait until all are Established and listable."""
    for crd in crds:
        name = crd["metadata"]["name"]
        try:
            client.apply(CRDS.path(name=name), crd)
        except KubeError as error:
            raise RuntimeError(f"the API server rejected CRD {name}: {error.message}") from error
    for crd in crds:
        name = crd["metadata"]["name"]
        wait_for(partial(_crd_established, client, name), what=f"CRD {name} to be Established", timeout=timeout)
        spec = crd["spec"]
        version = next(v["name"] for v in spec["versions"] if v.get("served", True))
        list_path = f"/apis/{spec['group']}/{version}/{spec['names']['plural']}"
        wait_for(partial(client.get, list_path, limit=1), what=f"{list_path} to be served", timeout=timeout)


def _crd_established(client: KubeClient, name: str) -> bool:
    return _established(client.get(CRDS.path(name=name)))


def has_status_subresource(client: KubeClient, crd_name: str) -> bool:
    """Whether writes to `.status` must go through `/status` (true for VMs, false for VMIs)."""
    crd = client.get(CRDS.path(name=crd_name))
    return any("status" in (v.get("subresources") or {}) for v in crd["spec"]["versions"] if v.get("storage"))
