"""Posting the core's EventNotes on the right objects."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import kopf

from kvha.constants import KUBEVIRT_GROUP, KUBEVIRT_VERSION
from kvha.models.events import EventNote
from kvha.models.views import VMView


def vm_ref(vm: VMView) -> dict[str, Any]:
    return {
        "apiVersion": f"{KUBEVIRT_GROUP}/{KUBEVIRT_VERSION}",
        "kind": "VirtualMachine",
        "metadata": {"namespace": vm.namespace, "name": vm.name, "uid": vm.uid},
    }


def node_ref(name: str, uid: str = "") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "uid": uid or name}}


def post(notes: Iterable[EventNote], *, on: Mapping[str, Any], vms: Mapping[str, VMView] | None = None) -> None:
    """Each note on `on` (the policy or the failover) and, when it names a VM, on the VM too, so
    `kubectl describe vm` tells the VM's owner what happened to it."""
    for note in notes:
        kopf.event(cast(kopf.Body, on), type=note.type, reason=note.reason, message=note.message)
        vm = vms.get(note.vm) if vms is not None and note.vm else None
        if vm is not None:
            kopf.event(cast(kopf.Body, vm_ref(vm)), type=note.type, reason=note.reason, message=note.message)
