"""Telling a VM's owner, with an Event, when a policy selects the VM but cannot protect it.

kvha never writes to a VirtualMachine (Argo CD and other GitOps tools would see drift); it only
reads VMs and posts Events about them. Events are posted when the verdict changes, not on every
evaluation, so a VM's event list stays readable. The verdicts are the policy evaluation's own
(`PolicyStep.protections`): no separate watch of VMs, and nothing computed twice.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from kvha.constants import REASON_VM_UNPROTECTED
from kvha.handlers import events
from kvha.models.events import EventNote
from kvha.models.views import VMView
from kvha.protection import Protection

Verdicts = MutableMapping[str, str]
"""By VM key, the verdict last told about (per policy)."""


def changed_verdicts(
    told: Mapping[str, str], protections: Mapping[str, Protection], *, policy: str
) -> tuple[dict[str, str], list[tuple[str, EventNote]]]:
    """The verdicts now, and a note for each VM that has become unprotectable since it was last told.

    A VM the policy no longer selects is forgotten, so that it hears again if selected again."""
    now = {
        key: protection.reason.value if protection.reason else "Protected" for key, protection in protections.items()
    }
    notes = [
        (
            key,
            EventNote(
                REASON_VM_UNPROTECTED,
                f"HAPolicy {policy} selects this VM but cannot protect it: {protections[key].message}",
                "Warning",
                vm=key,
            ),
        )
        for key, verdict in now.items()
        if verdict != "Protected" and told.get(key) != verdict
    ]
    return now, notes


def tell_owners(memo: Any, *, policy: str, protections: Mapping[str, Protection], vms: Mapping[str, VMView]) -> None:
    told: dict[str, dict[str, str]] = memo.setdefault("vm_verdicts", {})
    told[policy], notes = changed_verdicts(told.get(policy, {}), protections, policy=policy)
    for key, note in notes:
        vm = vms.get(key)
        if vm is not None:
            events.post([note], on=events.vm_ref(vm))
