"""May a VM's launcher pod run on a node at all? nodeSelector, required node affinity and taints,
evaluated as the Kubernetes scheduler does (requests are checked separately, in `packing`).

Only what the scheduler enforces is modelled: preferred affinity and PreferNoSchedule taints are
wishes, not constraints. Constraints between pods (pod affinity, topology spread) are in `inter_pod`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from kvha.models.views import NodeSelectorRequirement, NodeSelectorTerm, Placement, Taint

HARD_TAINT_EFFECTS = frozenset({"NoSchedule", "NoExecute"})
_NODE_NAME_FIELD = "metadata.name"


class SchedulingTarget(Protocol):
    """What constraint checks read of a node (a NodeCapacity or a NodeView)."""

    @property
    def name(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def taints(self) -> tuple[Taint, ...]: ...


def fits(placement: Placement, node: SchedulingTarget) -> bool:
    """Whether the scheduler would consider `node` for a pod with these constraints."""
    return node_affinity_allows(placement, node) and tolerates_taints(placement, node)


def node_affinity_allows(placement: Placement, node: SchedulingTarget) -> bool:
    """nodeSelector and required node affinity alone (what topology spread's nodeAffinityPolicy reads)."""
    labels = node.labels
    if any(labels.get(key) != value for key, value in placement.node_selector):
        return False
    terms = placement.required_terms
    return not terms or any(_term_matches(term, labels, node.name) for term in terms)


def tolerates_taints(placement: Placement, node: SchedulingTarget) -> bool:
    """Every NoSchedule and NoExecute taint of the node is tolerated."""
    return all(
        any(toleration.tolerates(taint) for toleration in placement.tolerations)
        for taint in node.taints
        if taint.effect in HARD_TAINT_EFFECTS
    )


def _term_matches(term: NodeSelectorTerm, labels: Mapping[str, str], node_name: str) -> bool:
    # Terms are ORed, requirements inside a term ANDed; an empty term matches no node.
    if not term.match_expressions and not term.match_fields:
        return False
    return all(requirement_matches(r, labels.get(r.key)) for r in term.match_expressions) and all(
        requirement_matches(r, node_name if r.key == _NODE_NAME_FIELD else None) for r in term.match_fields
    )


def requirement_matches(requirement: NodeSelectorRequirement, value: str | None) -> bool:
    """One node-selector requirement against a label value (None: the label is absent)."""
    operator, values = requirement.operator, requirement.values
    if operator in ("Gt", "Lt"):
        return _compare_integer(operator, value, values)
    verdicts = {
        "In": value is not None and value in values,
        "NotIn": value is None or value not in values,
        "Exists": value is not None,
        "DoesNotExist": value is None,
    }
    return verdicts.get(operator, False)  # an operator the apiserver would have rejected matches nothing


def _compare_integer(operator: str, value: str | None, values: tuple[str, ...]) -> bool:
    if value is None or len(values) != 1:
        return False
    try:
        actual, bound = int(value), int(values[0])
    except ValueError:
        return False
    return actual > bound if operator == "Gt" else actual < bound


def label_keys(placement: Placement) -> tuple[tuple[str, ...], bool]:
    """The node label keys the constraints read, and whether they read the node's name.

    Two nodes that agree on these keys, on their name when it is read, and on their hard taints
    are interchangeable for `fits`, which lets the packer evaluate the constraints once per group
    of alike nodes instead of once per node.
    """
    keys = {key for key, _ in placement.node_selector}
    reads_name = False
    for term in placement.required_terms:
        keys.update(r.key for r in term.match_expressions)
        reads_name = reads_name or bool(term.match_fields)
    return tuple(sorted(keys)), reads_name
