"""Reconcile: one pure step of a policy or of an incident, composed from the decision core.

These functions are what the kopf handlers call. They take everything as a snapshot, decide, and
return the new status plus the actions to take; they never touch the API, so a whole incident can
be replayed in a unit test with a fake clock.
"""

from kvha.reconcile.admission import Admission, AdmissionSnapshot, assess_admission
from kvha.reconcile.incident import (
    IncidentSnapshot,
    IncidentStep,
    advance_incident,
    fences,
    fresh_read_agrees,
    incident_policy,
    incident_vms,
)
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
from kvha.reconcile.what_if import ClusterRead, PlannedVM, WhatIf, WorstHost, what_if, worst_case_hosts

__all__ = [
    "Admission",
    "AdmissionSnapshot",
    "ClusterRead",
    "FailoverRecord",
    "IncidentSnapshot",
    "IncidentStep",
    "NewIncident",
    "PlannedVM",
    "PolicySnapshot",
    "PolicyStep",
    "Release",
    "ReleaseSnapshot",
    "WhatIf",
    "WorstHost",
    "advance_incident",
    "assess_admission",
    "evaluate_policy",
    "failover_name",
    "fences",
    "fresh_read_agrees",
    "healthy_nodes",
    "incident_policy",
    "incident_vms",
    "release_incident",
    "what_if",
    "worst_case_hosts",
]
