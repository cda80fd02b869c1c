"""Reconcile: one pure step of a policy or of an incident, composed from the decision core.

These functions are what the kopf handlers call. They take everything as a snapshot, decide, and
return the new status plus the actions to take; they never touch the API, so a whole incident can
be replayed in a unit test with a fake clock.
"""

from kvha.reconcile.incident import IncidentSnapshot, IncidentStep, advance_incident, fences, fresh_read_agrees
from kvha.reconcile.policy import (
    FailoverRecord,
    NewIncident,
    PolicySnapshot,
    PolicyStep,
    evaluate_policy,
    failover_name,
    healthy_nodes,
)
from kvha.reconcile.release import Release, ReleaseSnapshot, release_incident

__all__ = [
    "FailoverRecord",
    "IncidentSnapshot",
    "IncidentStep",
    "NewIncident",
    "PolicySnapshot",
    "PolicyStep",
    "Release",
    "ReleaseSnapshot",
    "advance_incident",
    "evaluate_policy",
    "failover_name",
    "fences",
    "fresh_read_agrees",
    "healthy_nodes",
    "release_incident",
]
