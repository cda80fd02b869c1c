"""VirtualMachine reconcile: tell the VM's owner, with an Event, when kvha cannot protect it.

kvha never writes to a VirtualMachine (Argo CD and other GitOps tools would see drift); it only
reads VMs and posts Events about them. Events are posted when the verdict changes, not on every
watch event, so a VM's event list stays readable.
"""

from __future__ import annotations

from typing import Any

import kopf

from kvha.constants import KUBEVIRT_GROUP, REASON_VM_UNPROTECTED
from kvha.handlers.snapshot import Indices, first, parsed_policies
from kvha.models.base import Priority
from kvha.models.views import VMView
from kvha.protection import classify, selects


@kopf.on.event(KUBEVIRT_GROUP, "v1", "virtualmachines")
def vm_protection(
    *,
    body: kopf.Body,
    memo: Any,
    namespace: str | None,
    name: str,
    type: str | None,  # noqa: A002 - kopf's kwarg
    **kwargs: Any,
) -> None:
    ix = Indices.of(kwargs)
    namespace = namespace or ""
    if type == "DELETED":
        memo.setdefault("vm_verdicts", {}).pop((namespace, name), None)
        return
    vm = VMView.from_api(body)
    ns_labels = first(ix.namespaces, namespace) or {}
    verdicts: dict[tuple[str, str], str] = memo.setdefault("vm_verdicts", {})
    for policy_name, spec in parsed_policies(ix.policies):
        if not selects(spec, vm, ns_labels):
            continue
        protection = classify(vm, default_priority=Priority.parse(spec.restart.default_priority))
        verdict = f"{policy_name}:{protection.reason or 'Protected'}"
        if verdicts.get((namespace, name)) == verdict:
            return
        verdicts[(namespace, name)] = verdict
        if not protection.protected:
            kopf.warn(
                body,
                reason=REASON_VM_UNPROTECTED,
                message=f"HAPolicy {policy_name} selects this VM but cannot protect it: {protection.message}",
            )
        return
