"""Admission control: would the cluster have room for the protected VMs if hosts failed now?"""

from kvha.admission.host_failures import failover_capacity

__all__ = ["failover_capacity"]
