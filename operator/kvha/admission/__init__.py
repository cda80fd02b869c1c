"""Admission control: would the cluster have room for the protected VMs if hosts failed now?"""

from kvha.admission.host_failures import failover_capacity, hosts_worst_first
from kvha.admission.protected import ProtectedVM, capacity_for_protected, protected_demand, worst_hosts

__all__ = [
    "ProtectedVM",
    "capacity_for_protected",
    "failover_capacity",
    "hosts_worst_first",
    "protected_demand",
    "worst_hosts",
]
