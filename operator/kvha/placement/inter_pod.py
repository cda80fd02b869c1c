"""Constraints between pods: required pod affinity and anti-affinity, and topology spread with
DoNotSchedule, evaluated as the scheduler's InterPodAffinity and PodTopologySpread filters do.

Clustered guests (database replicas, quorum members) use required anti-affinity precisely so that
one host failure cannot take two of them; a plan that broke it would be wrong twice over, since
the scheduler would refuse the pod anyway. What these checks read is `PodTopology`: every node's
labels and taints (a domain is a value of the topology key, on any node, dead or alive) and the
pods bound to them, less the launcher pods a failover is about to remove.

Cheap when unused: a candidate without constraints of its own, that no bound pod's anti-affinity
selects, costs one look-up, so the common case stays as fast as placement without these checks.
Supported: labelSelector (and matchLabelKeys), namespaces and namespaceSelector, any topology
key, minDomains, nodeAffinityPolicy and nodeTaintsPolicy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from kvha.models.views import (
    NodeView,
    Placement,
    PodAffinityTerm,
    PodScheduling,
    PodSelector,
    PodView,
    SpreadConstraint,
)
from kvha.placement.constraints import SchedulingTarget, node_affinity_allows, requirement_matches, tolerates_taints

NodeCheck = Callable[[SchedulingTarget], str | None]
"""Why a candidate may not run on a node because of other pods, or None if it may."""


@dataclass(frozen=True)
class PodTopology:
    """The cluster as inter-pod constraints see it. Built once per evaluation and shared by every
    placement of it; `leaving` names the instances (VMI uids) whose launcher pods are removed
    before the new pods are scheduled, so they count for nothing."""

    nodes: Sequence[NodeView] = ()
    pods: Sequence[PodView] = ()
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    leaving: frozenset[str] = frozenset()

    @cached_property
    def repelling(self) -> tuple[PodView, ...]:
        """Bound pods with required anti-affinity: they constrain every candidate they select.
        One pass over the pods per topology, not per placement."""
        return tuple(p for p in self.pods if p.scheduling.anti_affinity and self.counts(p))

    def counts(self, pod: PodView) -> bool:
        """Whether a pod is bound, alive and staying: the pods constraints count."""
        return pod.node_name is not None and not pod.terminal and pod.vmi_uid not in self.leaving


def selector_matches(selector: PodSelector | None, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics; a missing selector selects nothing."""
    if selector is None:
        return False
    if any(labels.get(key) != value for key, value in selector.match_labels):
        return False
    return all(requirement_matches(r, labels.get(r.key)) for r in selector.match_expressions)


@dataclass(frozen=True, slots=True)
class _Occupant:
    node: str
    scheduling: PodScheduling
    deleting: bool


class InterPodConstraints:
    """The bound pods of one placement run; candidates placed during the run join them, so a
    replica placed first constrains the one placed after it."""

    def __init__(self, topology: PodTopology) -> None:
        self.topology = topology
        self.node_labels: dict[str, Mapping[str, str]] = {n.name: n.labels for n in topology.nodes}
        self.repelling: list[_Occupant] = [
            _Occupant(p.node_name or "", p.scheduling, p.deleting) for p in topology.repelling
        ]
        self._by_namespace: dict[str, list[_Occupant]] | None = None

    def _occupants(self) -> dict[str, list[_Occupant]]:
        # Only a candidate with constraints of its own needs every bound pod: built on first use.
        if self._by_namespace is None:
            topology = self.topology
            self._by_namespace = {}
            for pod in topology.pods:
                if topology.counts(pod):
                    self._by_namespace.setdefault(pod.namespace, []).append(
                        _Occupant(pod.node_name or "", pod.scheduling, pod.deleting)
                    )
        return self._by_namespace

    def add(self, scheduling: PodScheduling | None, node: str, labels: Mapping[str, str]) -> None:
        """A candidate placed on `node`: later candidates see it as a bound pod."""
        if scheduling is None:
            return
        self.node_labels.setdefault(node, labels)
        occupant = _Occupant(node, scheduling, deleting=False)
        if self._by_namespace is not None:
            self._by_namespace.setdefault(scheduling.namespace, []).append(occupant)
        if scheduling.anti_affinity:
            self.repelling.append(occupant)

    def check_for(self, scheduling: PodScheduling | None, placement: Placement) -> NodeCheck | None:
        """A check of nodes for this candidate, or None when no other pod constrains it."""
        if scheduling is None:
            return None
        forbidden = self._repelled_from(scheduling)
        if not forbidden and not scheduling.constrained:
            return None
        checks: list[NodeCheck] = []
        for term in scheduling.anti_affinity:
            domains = self._domains(term, owner=scheduling.namespace, deleting=True)
            checks.append(_outside({(term.topology_key, d) for d in domains}, _term_words("anti-affinity", term)))
        if forbidden:
            checks.append(_outside(forbidden, "the required anti-affinity of a pod already running there"))
        if scheduling.affinity and not self._first_of_its_group(scheduling):
            for term in scheduling.affinity:
                checks.append(_inside(term, self._domains(term, owner=scheduling.namespace, deleting=True)))
        for constraint in scheduling.spread:
            checks.append(self._spread_check(constraint, scheduling, placement))

        def check(node: SchedulingTarget) -> str | None:
            for one in checks:
                problem = one(node)
                if problem is not None:
                    return problem
            return None

        return check

    # --- pod (anti-)affinity ---------------------------------------------------------------------

    def _namespaces_of(self, term: PodAffinityTerm, owner: str) -> Callable[[str], bool]:
        if term.namespace_selector is None:
            listed = set(term.namespaces) or {owner}
            return listed.__contains__
        labels = self.topology.namespace_labels
        listed = set(term.namespaces)
        selector = term.namespace_selector
        return lambda ns: (
            ns in listed or selector_matches(selector, labels.get(ns, {"kubernetes.io/metadata.name": ns}))
        )

    def _selects(self, term: PodAffinityTerm, owner: str, pod: PodScheduling) -> bool:
        return self._namespaces_of(term, owner)(pod.namespace) and selector_matches(term.selector, pod.labels)

    def _repelled_from(self, scheduling: PodScheduling) -> set[tuple[str, str]]:
        """(topology key, value) domains whose bound pods' anti-affinity selects this candidate:
        the scheduler honours anti-affinity both ways."""
        forbidden: set[tuple[str, str]] = set()
        for occupant in self.repelling:
            for term in occupant.scheduling.anti_affinity:
                value = self.node_labels.get(occupant.node, {}).get(term.topology_key)
                if value is not None and self._selects(term, occupant.scheduling.namespace, scheduling):
                    forbidden.add((term.topology_key, value))
        return forbidden

    def _domains(self, term: PodAffinityTerm, *, owner: str, deleting: bool) -> set[str]:
        """Values of the term's topology key on the nodes of the pods it selects."""
        in_namespace = self._namespaces_of(term, owner)
        found = set()
        for namespace, occupants in self._occupants().items():
            if not in_namespace(namespace):
                continue
            for occupant in occupants:
                if (deleting or not occupant.deleting) and selector_matches(term.selector, occupant.scheduling.labels):
                    value = self.node_labels.get(occupant.node, {}).get(term.topology_key)
                    if value is not None:
                        found.add(value)
        return found

    def _first_of_its_group(self, scheduling: PodScheduling) -> bool:
        """The scheduler's exception for the first pod of a group with affinity to itself: no bound
        pod matches any of its terms, and it matches all of them."""
        if any(self._domains(t, owner=scheduling.namespace, deleting=True) for t in scheduling.affinity):
            return False
        return all(self._selects(t, scheduling.namespace, scheduling) for t in scheduling.affinity)

    # --- topology spread -------------------------------------------------------------------------

    def _spread_check(self, constraint: SpreadConstraint, scheduling: PodScheduling, placement: Placement) -> NodeCheck:
        key = constraint.topology_key
        eligible: dict[str, str] = {}  # node → its domain, for nodes that form domains for this pod
        for node in self.topology.nodes:
            value = node.labels.get(key)
            if value is None:
                continue
            if constraint.honor_node_affinity and not node_affinity_allows(placement, node):
                continue
            if constraint.honor_taints and not tolerates_taints(placement, node):
                continue
            eligible[node.name] = value
        counts = dict.fromkeys(eligible.values(), 0)
        for occupant in self._occupants().get(scheduling.namespace, ()):
            domain = eligible.get(occupant.node)
            if (
                domain is not None
                and not occupant.deleting
                and selector_matches(constraint.selector, occupant.scheduling.labels)
            ):
                counts[domain] += 1
        lowest = 0 if len(counts) < constraint.min_domains else min(counts.values(), default=0)
        itself = 1 if selector_matches(constraint.selector, scheduling.labels) else 0

        def check(node: SchedulingTarget) -> str | None:
            value = node.labels.get(key)
            if value is None:
                return f"its topology spread constraint on {key} (the node has no {key} label)"
            if counts.get(value, 0) + itself - lowest > constraint.max_skew:
                return f"its topology spread constraint on {key} (maxSkew {constraint.max_skew})"
            return None

        return check


def _term_words(kind: str, term: PodAffinityTerm) -> str:
    return f"its required pod {kind} on {term.topology_key}"


def _outside(forbidden: set[tuple[str, str]], words: str) -> NodeCheck:
    def check(node: SchedulingTarget) -> str | None:
        labels = node.labels
        return words if any(labels.get(key) == value for key, value in forbidden) else None

    return check


def _inside(term: PodAffinityTerm, domains: set[str]) -> NodeCheck:
    words = _term_words("affinity", term)

    def check(node: SchedulingTarget) -> str | None:
        return None if node.labels.get(term.topology_key) in domains else words

    return check
