"""Prometheus metrics, declared once and updated through small `observe_*` functions.

Names follow Prometheus conventions (`kvha_` prefix, `_total` counters, `_seconds` units) and are
what the Helm chart's PrometheusRule alerts on; rename one and the alerts go silent.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kvha.models.base import Priority

REGISTRY = CollectorRegistry(auto_describe=True)

INCIDENTS = Counter(
    "kvha_incidents_total",
    "Node failovers opened, by policy and how they ended.",
    ["policy", "outcome"],
    registry=REGISTRY,
)
VMS_RESTORED = Counter(
    "kvha_vms_restored_total",
    "VMs running again on a healthy node after a failover.",
    ["policy", "priority"],
    registry=REGISTRY,
)
VM_RESTARTS_FAILED = Counter(
    "kvha_vm_restarts_failed_total",
    "VMs kvha gave up restarting: their stuck instance did not go away within maxAttempts.",
    ["policy", "priority"],
    registry=REGISTRY,
)
RECOVERY_SECONDS = Histogram(
    "kvha_vm_recovery_seconds",
    "From node failure detected to the VM Running again elsewhere.",
    ["policy"],
    buckets=(5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200),
    registry=REGISTRY,
)
FENCING_SECONDS = Histogram(
    "kvha_fencing_seconds",
    "From fencing started to fencing confirmed.",
    ["policy", "strategy"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
VMS_WAITING = Gauge(
    "kvha_vms_waiting_for_capacity",
    "VMs of active failovers that fit on no healthy node.",
    ["policy"],
    registry=REGISTRY,
)
ACTIVE_FAILOVERS = Gauge(
    "kvha_active_failovers",
    "Node failovers not yet completed.",
    ["policy"],
    registry=REGISTRY,
)
FAILOVER_CAPACITY = Gauge(
    "kvha_failover_capacity_hosts",
    "Host failures the cluster can absorb now for the policy's VMs.",
    ["policy"],
    registry=REGISTRY,
)
FAILOVER_CAPACITY_TARGET = Gauge(
    "kvha_failover_capacity_target_hosts",
    "Host failures the policy asks the cluster to absorb.",
    ["policy"],
    registry=REGISTRY,
)
PROTECTED_VMS = Gauge("kvha_protected_vms", "VMs a policy protects.", ["policy"], registry=REGISTRY)
UNPROTECTABLE_VMS = Gauge(
    "kvha_unprotectable_vms",
    "VMs a policy selects but cannot protect, by reason.",
    ["policy", "reason"],
    registry=REGISTRY,
)
STORM_GUARD = Gauge(
    "kvha_storm_guard_active",
    "1 while too many nodes are unhealthy for kvha to act.",
    ["policy"],
    registry=REGISTRY,
)
RECOVERED_NODES_TAINTED = Gauge(
    "kvha_recovered_nodes_tainted",
    "Nodes Ready again that still carry the out-of-service taint of one of the policy's incidents "
    "for longer than undoing fencing takes.",
    ["policy"],
    registry=REGISTRY,
)
IS_LEADER = Gauge("kvha_leader", "1 on the replica that holds the leader Lease.", registry=REGISTRY)
CACHES_SYNCED = Gauge(
    "kvha_caches_synced",
    "1 once every cache has its initial list (detection judges nothing before).",
    registry=REGISTRY,
)
WATCH_EVENTS = Counter(
    "kvha_watch_events_total", "Watch events taken into kvha's caches, by resource.", ["resource"], registry=REGISTRY
)
RELISTS = Counter(
    "kvha_watch_relists_total",
    "Caches listed again because their watch expired (410 Gone), by resource.",
    ["resource"],
    registry=REGISTRY,
)
LEASE_EVENT_LAG = Histogram(
    "kvha_lease_event_lag_seconds",
    "From a node Lease's renewTime to kvha's cache taking the renewal in. Diagnostic only: it "
    "compares the node's clock with kvha's, which detection never does.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
    registry=REGISTRY,
)


def observe_incident_opened(policy: str) -> None:
    INCIDENTS.labels(policy=policy, outcome="opened").inc()


def observe_incident_closed(policy: str, outcome: str) -> None:
    INCIDENTS.labels(policy=policy, outcome=outcome).inc()


# Priority labels are the API's names ("High"), never the IntEnum's number.
def observe_vm_restored(*, policy: str, priority: Priority, recovery_seconds: float) -> None:
    VMS_RESTORED.labels(policy=policy, priority=priority.label).inc()
    RECOVERY_SECONDS.labels(policy=policy).observe(max(recovery_seconds, 0.0))


def observe_vm_restart_failed(*, policy: str, priority: Priority) -> None:
    VM_RESTARTS_FAILED.labels(policy=policy, priority=priority.label).inc()


def observe_fenced(*, policy: str, strategy: str, seconds: float) -> None:
    FENCING_SECONDS.labels(policy=policy, strategy=strategy).observe(max(seconds, 0.0))


def observe_policy(
    *,
    policy: str,
    protected: int,
    unprotectable: dict[str, int],
    capacity: int | None,
    target: int,
    storm: bool,
    active: int,
    waiting: int,
    tainted_recovered: int = 0,
) -> None:
    PROTECTED_VMS.labels(policy=policy).set(protected)
    for reason, count in unprotectable.items():
        UNPROTECTABLE_VMS.labels(policy=policy, reason=reason).set(count)
    if capacity is not None:
        FAILOVER_CAPACITY.labels(policy=policy).set(capacity)
    FAILOVER_CAPACITY_TARGET.labels(policy=policy).set(target)
    STORM_GUARD.labels(policy=policy).set(1 if storm else 0)
    ACTIVE_FAILOVERS.labels(policy=policy).set(active)
    VMS_WAITING.labels(policy=policy).set(waiting)
    RECOVERED_NODES_TAINTED.labels(policy=policy).set(tainted_recovered)


def observe_leadership(*, leader: bool) -> None:
    IS_LEADER.set(1 if leader else 0)


def observe_caches_synced() -> None:
    CACHES_SYNCED.set(1)


def observe_watch_event(resource: str) -> None:
    WATCH_EVENTS.labels(resource=resource).inc()


def observe_relist(resource: str) -> None:
    RELISTS.labels(resource=resource).inc()


def observe_lease_event_lag(seconds: float) -> None:
    LEASE_EVENT_LAG.observe(max(seconds, 0.0))
