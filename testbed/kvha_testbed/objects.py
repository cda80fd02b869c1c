"""Manifests tests need over and over: a VirtualMachine that KubeVirt's real schema accepts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Obj = dict[str, Any]


def vm_manifest(
    name: str,
    *,
    namespace: str,
    cpu: int = 1,
    memory: str = "1Gi",
    run_strategy: str | None = "Always",
    running: bool | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    template_labels: Mapping[str, str] | None = None,
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Obj] = (),
    affinity: Obj | None = None,
    priority_class: str | None = None,
    termination_grace_seconds: int | None = None,
) -> Obj:
    """A minimal valid kubevirt.io/v1 VirtualMachine: `cpu` cores, `memory` guest RAM, no disks."""
    spec: Obj = {
        "domain": {
            "cpu": {"cores": cpu},
            "memory": {"guest": memory},
            "resources": {"requests": {"memory": memory}},
            "devices": {},
        },
    }
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if tolerations:
        spec["tolerations"] = [dict(t) for t in tolerations]
    if affinity:
        spec["affinity"] = affinity
    if priority_class:
        spec["priorityClassName"] = priority_class
    if termination_grace_seconds is not None:
        spec["terminationGracePeriodSeconds"] = termination_grace_seconds
    vm_spec: Obj = {
        "template": {"metadata": {"labels": {"kubevirt.io/vm": name, **(template_labels or {})}}, "spec": spec}
    }
    if run_strategy is not None:
        vm_spec["runStrategy"] = run_strategy
    if running is not None:
        vm_spec["running"] = running
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels or {}),
            "annotations": dict(annotations or {}),
        },
        "spec": vm_spec,
    }


def eviction_tolerations(seconds: int) -> list[Obj]:
    """The NoExecute tolerations the apiserver's DefaultTolerationSeconds admission adds to a pod
    (real default: 300 s), written out so a pod keeps them whatever the testbed's apiserver says."""
    return [
        {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
    ]
