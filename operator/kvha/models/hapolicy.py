"""The HAPolicy custom resource: which VMs are protected, how a dead node is recognised and
fenced, and how its guests are restarted.

These models are the single source of truth for `crds/hapolicies.kvha.io.yaml` (see
`kvha.crdgen`). Cross-field rules live twice on purpose: as CEL in the CRD, so the apiserver
rejects bad input with a readable message at `kubectl apply`, and as pydantic validators, so the
operator never acts on an object that slipped past an older CRD.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from kvha.models.base import ApiModel, Condition, IntOrPercent, LabelSelector, Priority
from kvha.models.durations import Duration, seconds


class UnhealthyCondition(ApiModel):
    """A node condition that counts as failure once it has held for `duration`."""

    type: str = Field(min_length=1, description="Node condition type, for example Ready.")
    status: Literal["True", "False", "Unknown"]
    duration: Duration = Field(description="How long the condition must hold, for example 30s.")


def _default_unhealthy_conditions() -> list[UnhealthyCondition]:
    return [
        UnhealthyCondition(type="Ready", status="False", duration="30s"),
        UnhealthyCondition(type="Ready", status="Unknown", duration="30s"),
    ]


KUBEVIRT_HEARTBEAT_MINIMUM_SECONDS = 180.0
KUBEVIRT_HEARTBEAT_MINIMUM_MESSAGE = (
    "detection.kubevirtHeartbeatStaleAfter below 3m would fail live nodes: virt-handler updates the "
    "heartbeat only every 60-132s (KubeVirt itself waits 5m)"
)


class DetectionSpec(ApiModel):
    """When a node counts as dead. Any one signal is enough; `healthyDelay` guards against
    flapping: a node must stay healthy this long before its incident closes."""

    # The same rule as the validator below, in CEL, so `kubectl apply` rejects it up front.
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.kubevirtHeartbeatStaleAfter) || "
                    "duration(self.kubevirtHeartbeatStaleAfter) >= duration('3m')",
                    "message": KUBEVIRT_HEARTBEAT_MINIMUM_MESSAGE,
                }
            ]
        }
    )

    unhealthy_conditions: list[UnhealthyCondition] = Field(
        default_factory=_default_unhealthy_conditions,
        max_length=16,
        description="Node conditions that mean failure after their duration (default Ready False/Unknown for 30s).",
    )
    lease_stale_after: Duration | None = Field(
        default="40s",
        description="Failure when the node's Lease in kube-node-lease has not been renewed for this long.",
    )
    kubevirt_heartbeat_stale_after: Duration | None = Field(
        default=None,
        description=(
            "Failure when virt-handler's kubevirt.io/heartbeat annotation has not changed for this long "
            "(at least 3m: virt-handler updates it every 60-132s)."
        ),
    )
    healthy_delay: Duration = Field(
        default="60s",
        description="How long a node must stay healthy before its incident closes (anti-flapping).",
    )

    @model_validator(mode="after")
    def _heartbeat_minimum(self) -> DetectionSpec:
        stale_after = self.kubevirt_heartbeat_stale_after
        if stale_after is not None and seconds(stale_after) < KUBEVIRT_HEARTBEAT_MINIMUM_SECONDS:
            raise ValueError(KUBEVIRT_HEARTBEAT_MINIMUM_MESSAGE)
        return self


FENCING_NONE_MESSAGE = (
    "fencing strategy None restarts VMs whose old instance may still be running; "
    "set fencing.allowUnfencedRestart: true to accept that risk"
)
REMEDIATION_TEMPLATE_MESSAGE = "fencing strategy Remediation requires fencing.remediationTemplate"
WATCHDOG_MINIMUM_MESSAGE = "fencing.watchdogTimeout below 10s cannot be a real hardware watchdog"


# A NodeFailover's phase. It is defined here, not in nodefailover, because the HAPolicy status
# refers to its incidents by phase and nodefailover imports this module.
class FailoverPhase(enum.StrEnum):
    DETECTED = "Detected"
    FENCING = "Fencing"
    FENCED = "Fenced"
    RESTARTING = "Restarting"
    COMPLETED = "Completed"
    ABORTED = "Aborted"
    FAILED = "Failed"

    @property
    def terminal(self) -> bool:
        return self in (FailoverPhase.COMPLETED, FailoverPhase.ABORTED, FailoverPhase.FAILED)


class FencingStrategy(enum.StrEnum):
    OUT_OF_SERVICE_TAINT = "OutOfServiceTaint"
    REMEDIATION = "Remediation"
    NONE = "None"


class FenceConfirmation(enum.StrEnum):
    """How kvha learns that a node with the out-of-service taint is really powered off.

    Manual: a human or an out-of-band agent (BMC, PDU) annotates the Node with
    kvha.io/fence-confirmed=<name of the NodeFailover>; kvha then applies the taint. Watchdog:
    every node runs a hardware watchdog that resets it when it loses the cluster, so after
    `watchdogTimeout` of unreachability it is known to be down (the self-node-remediation model).
    """

    MANUAL = "Manual"
    WATCHDOG = "Watchdog"


class TemplateReference(ApiModel):
    """A medik8s-style remediation template (SelfNodeRemediationTemplate, FenceAgentsRemediationTemplate)."""

    api_version: str = Field(min_length=3, pattern=r"^[a-z0-9.-]+/[a-z0-9]+$")
    kind: str = Field(min_length=1, pattern=r"^[A-Z][A-Za-z0-9]*Template$")
    name: str = Field(min_length=1)
    namespace: str = Field(min_length=1)

    @property
    def remediation_kind(self) -> str:
        """The kind of the objects made from this template: the medik8s convention is the
        template's kind without "Template" (SelfNodeRemediationTemplate → SelfNodeRemediation)."""
        return self.kind.removesuffix("Template")


class FencingSpec(ApiModel):
    # The same rules as the validator below, in CEL, so `kubectl apply` rejects them up front.
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.strategy) || self.strategy != 'None' || "
                    "(has(self.allowUnfencedRestart) && self.allowUnfencedRestart)",
                    "message": FENCING_NONE_MESSAGE,
                },
                {
                    "rule": "!has(self.strategy) || self.strategy != 'Remediation' || has(self.remediationTemplate)",
                    "message": REMEDIATION_TEMPLATE_MESSAGE,
                },
                {
                    "rule": "!has(self.confirmation) || self.confirmation != 'Watchdog' || "
                    "!has(self.watchdogTimeout) || duration(self.watchdogTimeout) >= duration('10s')",
                    "message": WATCHDOG_MINIMUM_MESSAGE,
                },
            ]
        }
    )

    strategy: FencingStrategy = Field(
        default=FencingStrategy.OUT_OF_SERVICE_TAINT,
        description="OutOfServiceTaint, Remediation (medik8s-compatible), or None (unsafe; see allowUnfencedRestart).",
    )
    confirmation: FenceConfirmation = Field(
        default=FenceConfirmation.MANUAL,
        description="For OutOfServiceTaint: how kvha learns that the node is powered off.",
    )
    watchdog_timeout: Duration = Field(
        default="3m",
        description="With confirmation Watchdog: unreachability after which the node's watchdog has reset it.",
    )
    remediation_template: TemplateReference | None = Field(
        default=None,
        description="With strategy Remediation: the template to create the remediation from.",
    )
    timeout: Duration = Field(
        default="10m",
        description="Fencing not confirmed within this time fails the incident (VMs stay put).",
    )
    allow_unfenced_restart: bool = Field(
        default=False,
        description=(
            "Must be true for strategy None. Even then only VMs without ReadWriteOnce or block volumes, "
            "or annotated kvha.io/allow-unfenced-restart, are restarted unfenced."
        ),
    )

    @model_validator(mode="after")
    def _cross_field(self) -> FencingSpec:
        if self.strategy is FencingStrategy.NONE and not self.allow_unfenced_restart:
            raise ValueError(FENCING_NONE_MESSAGE)
        if self.strategy is FencingStrategy.REMEDIATION and self.remediation_template is None:
            raise ValueError(REMEDIATION_TEMPLATE_MESSAGE)
        if self.confirmation is FenceConfirmation.WATCHDOG and seconds(self.watchdog_timeout) < 10:
            raise ValueError(WATCHDOG_MINIMUM_MESSAGE)
        return self


class TierOrdering(enum.StrEnum):
    WAIT_FOR_READY = "WaitForReady"
    NONE = "None"


class PriorityLimit(ApiModel):
    """The highest restart priority the VMs of some namespaces may claim. Namespace users can
    annotate their own VMs kvha.io/restart-priority: Highest; a limit keeps them from taking the
    capacity and restart slots of every other tenant."""

    namespace_selector: LabelSelector = Field(
        default_factory=LabelSelector,
        description="Namespaces this limit applies to (empty: all).",
    )
    max_priority: Priority = Field(
        description="Priority at most (annotation or default); a VM that claims more restarts at this priority.",
        # A limit of Disabled would silently unprotect a namespace; excluding it is the API's choice.
        json_schema_extra={"enum": [p.label for p in Priority if p is not Priority.DISABLED]},
    )

    @model_validator(mode="after")
    def _not_disabled(self) -> PriorityLimit:
        if self.max_priority is Priority.DISABLED:
            raise ValueError("maxPriority cannot be Disabled")
        return self


class RestartSpec(ApiModel):
    default_priority: Priority = Field(
        default=Priority.MEDIUM,
        description="Priority of VMs without the kvha.io/restart-priority annotation.",
    )
    tier_ordering: TierOrdering = Field(
        default=TierOrdering.WAIT_FOR_READY,
        description=(
            "WaitForReady: a priority tier starts only when the previous tier is Ready (or tierTimeout passed)."
        ),
    )
    tier_timeout: Duration = Field(default="2m", description="Longest wait for the previous tier to become Ready.")
    max_parallel: int = Field(
        default=10,
        ge=1,
        le=1000,
        description=(
            "Most VMs being restarted at once. A VM whose new instance is not running tierTimeout after its "
            "restart no longer counts."
        ),
    )
    max_attempts: int = Field(
        default=10,
        ge=1,
        le=100,
        description=("Times kvha removes a VM's stuck instance (every 10s) before that VM's restart is marked Failed."),
    )
    priority_limits: list[PriorityLimit] = Field(
        default_factory=list,
        max_length=64,
        description=(
            "Highest priority per namespace selector; the first limit whose namespaceSelector matches "
            "the VM's namespace applies (list specific namespaces before a catch-all)."
        ),
    )


class AdmissionControlSpec(ApiModel):
    host_failures_to_tolerate: int = Field(
        default=1,
        ge=0,
        le=100,
        description=("Host failures the cluster must absorb for the protected VMs; less sets a condition and alert."),
    )


class StormGuardSpec(ApiModel):
    # 49% (rounded down) is the mirror of node-healthcheck-operator's minHealthy 51%: a 3-node
    # cluster may lose one host, while losing two looks like a partition, not two dead hosts.
    max_unhealthy_nodes: IntOrPercent = Field(
        default="49%",
        description=(
            "Above this many unhealthy watched nodes (count or percent, rounded down) nothing is fenced or restarted."
        ),
    )
    cooldown: Duration = Field(
        default="5m",
        description="After a storm ends, wait this long before acting again.",
    )


class HAPolicySpec(ApiModel):
    vm_selector: LabelSelector = Field(
        default_factory=LabelSelector,
        description="VirtualMachines to protect (empty: all).",
    )
    namespace_selector: LabelSelector = Field(
        default_factory=LabelSelector,
        description="Namespaces whose VMs are protected (empty: all).",
    )
    node_selector: LabelSelector = Field(
        default_factory=LabelSelector,
        description="Nodes this policy watches (empty: all).",
    )
    detection: DetectionSpec = Field(default_factory=DetectionSpec)
    fencing: FencingSpec = Field(default_factory=FencingSpec)
    restart: RestartSpec = Field(default_factory=RestartSpec)
    admission_control: AdmissionControlSpec = Field(default_factory=AdmissionControlSpec)
    storm_guard: StormGuardSpec = Field(default_factory=StormGuardSpec)


class UnprotectableCount(ApiModel):
    reason: str
    count: int = Field(ge=0)


class FailoverRef(ApiModel):
    name: str
    node: str
    phase: FailoverPhase


class TaintedNode(ApiModel):
    """A node Ready again that still carries the out-of-service taint while one of the policy's
    incidents has not finished undoing its fencing."""

    node: str
    failover: str
    since: datetime = Field(description="When kvha first saw the node Ready with the taint still on.")


class HAPolicyStatus(ApiModel):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    protected_vms: int = Field(default=0, ge=0)
    unprotectable_vms: int = Field(default=0, ge=0)
    unprotectable_reasons: list[UnprotectableCount] = Field(default_factory=list)
    priority_capped_vms: int = Field(
        default=0,
        ge=0,
        description="Protected VMs that claim a higher priority than restart.priorityLimits allows their namespace.",
    )
    watched_nodes: int = Field(default=0, ge=0)
    unhealthy_nodes: int = Field(default=0, ge=0)
    failover_capacity: int | None = Field(
        default=None,
        description="Host failures the cluster can absorb for the protected VMs right now.",
    )
    active_failovers: list[FailoverRef] = Field(default_factory=list)
    active_failover_count: int = Field(default=0, ge=0)
    last_failover: FailoverRef | None = None
    last_failover_time: datetime | None = None
    storm_ended_at: datetime | None = None
    tainted_nodes: list[TaintedNode] = Field(default_factory=list, max_length=1000)
