"""The NodeFailover custom resource: one per node incident, the crash-safe record of a failover.

Everything the operator needs to resume after a crash is in `status`: which phase the incident is
in, what fencing has been done and confirmed, and each VM's state. The next leader reads it and
continues; nothing lives only in memory.
"""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import Field, computed_field

from kvha.models.base import ApiModel, Condition, Priority
from kvha.models.hapolicy import FailoverPhase, FencingStrategy, HAPolicySpec

# FailoverPhase is defined with the HAPolicy status (which refers to incidents by phase) and is
# re-exported here, where readers of the NodeFailover model look for it.
__all__ = ["FailoverPhase", "FailoverVM", "FencingStatus", "NodeFailoverSpec", "NodeFailoverStatus", "VMState"]


class VMState(enum.StrEnum):
    PENDING = "Pending"
    RESTARTING = "Restarting"
    RUNNING = "Running"
    WAITING_FOR_CAPACITY = "WaitingForCapacity"
    SKIPPED = "Skipped"
    FAILED = "Failed"

    @property
    def settled(self) -> bool:
        """No further action will be taken for this VM in this incident."""
        return self in (VMState.RUNNING, VMState.SKIPPED, VMState.FAILED)


class FailoverVM(ApiModel):
    namespace: str
    name: str
    priority: Priority
    from_node: str
    state: VMState = VMState.PENDING
    reason: str | None = Field(default=None, description="Why the VM is skipped, waiting or failed.")
    planned_node: str | None = None
    node: str | None = Field(default=None, description="Where the VM runs again.")
    old_vmi_uid: str | None = Field(default=None, description="The stuck instance kvha removed.")
    restarted_at: datetime | None = Field(
        default=None, description="When the VM's restart began: kvha's first attempt, or its stuck instance seen gone."
    )
    attempts: int = Field(default=0, ge=0, description="How often kvha has removed the VM's stuck instance.")
    last_attempt_at: datetime | None = Field(default=None, description="When kvha last removed its stuck instance.")
    running_at: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class FencingStatus(ApiModel):
    strategy: FencingStrategy
    started_at: datetime | None = None
    confirmed_at: datetime | None = None
    confirmed_by: str | None = Field(default=None, description="What confirmed the node is down.")
    taint_applied: bool = False
    taint_removed: bool = False
    remediation_name: str | None = None
    recovered_at: datetime | None = Field(
        default=None,
        description="When kvha first saw the fenced node healthy again: the end of this incident's spell "
        "of ill health. A later failure of the node is a new incident, even while this one still undoes its fencing.",
    )
    message: str | None = None


class NodeFailoverSpec(ApiModel):
    node_name: str = Field(min_length=1)
    policy_name: str = Field(min_length=1)
    detected_at: datetime
    reason: str = Field(description="What detection saw, for example 'Ready=Unknown for 42s'.")


class NodeFailoverStatus(ApiModel):
    phase: FailoverPhase = FailoverPhase.DETECTED
    policy: HAPolicySpec | None = Field(
        default=None,
        description=(
            "The HAPolicy's spec when the incident opened; `vms` lists the VMs it selected then. The incident "
            "is driven from these copies: editing, invalidating or deleting the policy does not change it."
        ),
    )
    conditions: list[Condition] = Field(default_factory=list)
    fencing: FencingStatus | None = None
    vms: list[FailoverVM] = Field(default_factory=list)
    total: int = Field(default=0, ge=0)
    restored: int = Field(default=0, ge=0)
    waiting: int = Field(default=0, ge=0)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    message: str | None = None
    finished: bool = Field(
        default=False,
        description="Terminal, and nothing kvha applied for fencing remains; kvha no longer drives it.",
    )
    observed_generation: int | None = None

    # `status.fencedAt` stays on the wire (kubectl users, the console and the benchmarks read it),
    # but it is the same datum as `fencing.confirmedAt`, so it is derived here rather than stored a
    # second time: written with the status, never read back (a stored value is ignored on parsing,
    # as unknown fields are), and `replace(fenced_at=...)` fails. The CRD keeps the field because
    # crdgen adds computed fields to the schema.
    @computed_field  # type: ignore[prop-decorator]
    @property
    def fenced_at(self) -> datetime | None:
        """When fencing was confirmed: `fencing.confirmedAt`, repeated for readers of the status."""
        return self.fencing.confirmed_at if self.fencing else None
