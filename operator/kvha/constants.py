"""Names shared by the operator, the CRDs and the docs: the API group, annotations, labels,
condition types and reasons, and event reasons.

Kept in one module so a reason string is never spelled two ways (users grep for them, alerts match
on them).
"""

from typing import Final

GROUP: Final = "kvha.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

KUBEVIRT_GROUP: Final = "kubevirt.io"
KUBEVIRT_VERSION: Final = "v1"

# --- annotations and labels kvha reads or writes -------------------------------------------
PRIORITY_ANNOTATION: Final = "kvha.io/restart-priority"
"""Per-VM override of the policy's default restart priority (Disabled, Lowest … Highest)."""
FENCE_CONFIRMED_ANNOTATION: Final = "kvha.io/fence-confirmed"
"""Set on a Node by a human or an out-of-band agent (BMC, PDU) to confirm it is powered off; the value
is the name of the NodeFailover it confirms, so a confirmation left from an earlier incident never
confirms the next one."""
UNSAFE_RESTART_ANNOTATION: Final = "kvha.io/allow-unfenced-restart"
"""Set on a VM to opt it into restart without fencing when the policy's strategy is None."""
FAILOVER_ANNOTATION: Final = "kvha.io/failover"
"""On a remediation kvha created: the NodeFailover it was created for (its ownerReference says the same)."""
FAILOVER_NODE_LABEL: Final = "kvha.io/node"
FAILOVER_POLICY_LABEL: Final = "kvha.io/policy"
FINALIZER: Final = "kvha.io/finalizer"
KOPF_ANNOTATION_PREFIX: Final = "kopf.kvha.io"

NODE_LEASE_NAMESPACE: Final = "kube-node-lease"
"""Where each kubelet renews its node's Lease."""

KUBEVIRT_HEARTBEAT_ANNOTATION: Final = "kubevirt.io/heartbeat"
KUBEVIRT_SCHEDULABLE_LABEL: Final = "kubevirt.io/schedulable"
KUBEVIRT_CREATED_BY_LABEL: Final = "kubevirt.io/created-by"
KUBEVIRT_LAUNCHER_LABEL: Final = "kubevirt.io"
"""`virt-launcher` on every launcher pod KubeVirt creates."""
VMI_KIND: Final = "VirtualMachineInstance"
MIRROR_POD_ANNOTATION: Final = "kubernetes.io/config.mirror"
"""On the API's copy of a static pod: the kubelet runs it from a file on the node."""
OUT_OF_SERVICE_TAINT_KEY: Final = "node.kubernetes.io/out-of-service"
OUT_OF_SERVICE_TAINT_VALUE: Final = "nodeshutdown"
OUT_OF_SERVICE_TAINT_EFFECT: Final = "NoSchedule"
"""Kubernetes accepts NoExecute or NoSchedule for this taint, and its pod GC and volume detach act on
the key alone. NoExecute would also make the taint manager evict every pod on the node at once, so
KubeVirt would restart every VM at the same moment and the scheduler, not the priorities, would
decide who gets the capacity; with NoSchedule kvha removes the stuck instances itself, in order."""

# --- condition types -------------------------------------------------------------------------
COND_READY: Final = "Ready"
COND_FAILOVER_CAPACITY: Final = "FailoverCapacitySufficient"
COND_STORM_GUARD: Final = "StormGuardActive"
COND_FENCED: Final = "Fenced"
COND_COMPLETED: Final = "Completed"
COND_RECOVERED_NODE_TAINTED: Final = "RecoveredNodeTainted"
"""On an HAPolicy: a node that is Ready again still carries the out-of-service taint of one of its
incidents for longer than undoing fencing takes."""

# --- reasons (conditions and events) -------------------------------------------------------
REASON_VALID: Final = "PolicyValid"
REASON_INVALID: Final = "InvalidPolicy"
REASON_CAPACITY_OK: Final = "CapacitySufficient"
REASON_CAPACITY_SHORT: Final = "InsufficientFailoverCapacity"
REASON_STORM: Final = "TooManyUnhealthyNodes"
REASON_NO_STORM: Final = "UnhealthyNodesWithinLimit"
REASON_TAINT_REMAINS: Final = "OutOfServiceTaintRemains"
REASON_NO_TAINT_REMAINS: Final = "NoRecoveredNodeTainted"
REASON_NODE_UNHEALTHY: Final = "NodeUnhealthy"
REASON_INCIDENT_NOT_OPENED: Final = "IncidentNotOpened"
REASON_FENCING_STARTED: Final = "FencingStarted"
REASON_FENCING_CONFIRMED: Final = "FencingConfirmed"
REASON_FENCING_AWAITING: Final = "AwaitingFenceConfirmation"
REASON_FENCING_TIMEOUT: Final = "FencingTimedOut"
REASON_FENCING_FAILED: Final = "FencingFailed"
REASON_NODE_RECOVERED: Final = "NodeRecovered"
REASON_VM_RESTARTING: Final = "VMRestarting"
REASON_VM_RESTORED: Final = "VMRestored"
REASON_VM_WAITING: Final = "WaitingForCapacity"
REASON_VM_UNPROTECTED: Final = "VMUnprotected"
REASON_VM_RESTART_FAILED: Final = "VMRestartFailed"
REASON_FAILOVER_COMPLETED: Final = "FailoverCompleted"
REASON_FAILOVER_ABORTED: Final = "FailoverAborted"
REASON_RELEASING: Final = "FailoverDeleted"
"""A NodeFailover deleted by hand undoes its fencing before its finalizer goes."""
