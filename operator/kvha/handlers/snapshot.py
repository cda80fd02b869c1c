"""Turn the caches' indices into the plain mappings the decision core takes.

Index keys map to the values of the objects under them; for indices keyed by a unique name there is
one value per key. These helpers flatten them without copying more than needed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from kvha.k8s.informer import CACHES, Index
from kvha.models.hapolicy import HAPolicySpec
from kvha.models.views import ClaimView, LeaseView, NodeView, PodView, VMIView, VMView
from kvha.reconcile.policy import FailoverRecord

K = TypeVar("K")
V = TypeVar("V")


def first(index: Index[K, V], key: K) -> V | None:
    store = index.get(key)
    if store is None:
        return None
    return next(iter(store), None)


def values(index: Index[Any, V]) -> Iterator[V]:
    for store in index.values():
        yield from store


def by_key(index: Index[K, V]) -> dict[K, V]:
    """Unique-key index as a dict (the last value wins if a key was briefly duplicated)."""
    return {key: value for key, store in index.items() for value in store}


class Unique(Mapping[K, V]):
    """A unique-key index as the plain mapping the core takes, without copying it: a tick at 2,000
    VMs would otherwise rebuild thousands of dict entries per index, every second."""

    def __init__(self, index: Index[K, V]) -> None:
        self._index = index

    def __getitem__(self, key: K) -> V:
        value = first(self._index, key)
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[K]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


def parse_policy(spec: Mapping[str, Any]) -> tuple[HAPolicySpec | None, str | None]:
    """The policy, or a message that names each bad field the way the user wrote it."""
    try:
        return HAPolicySpec.model_validate(dict(spec)), None
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "spec"
            problems.append(f"spec.{where}: {error['msg']}")
        return None, "; ".join(problems)


class ParsedPolicies:
    """Each HAPolicy parsed once per change of its spec, not on every step that reads it. Keyed on
    the spec itself, not on `metadata.generation`: a policy deleted and created again under the same
    name starts again at generation 1 with another spec."""

    def __init__(self) -> None:
        self._parsed: dict[str, tuple[dict[str, Any], tuple[HAPolicySpec | None, str | None]]] = {}

    def parse_with_problem(self, name: str, record: Mapping[str, Any]) -> tuple[HAPolicySpec | None, str | None]:
        spec = dict(record["spec"])
        known = self._parsed.get(name)
        if known is not None and known[0] == spec:
            return known[1]
        parsed = parse_policy(spec)
        self._parsed[name] = (spec, parsed)
        return parsed

    def parse(self, name: str, record: Mapping[str, Any]) -> HAPolicySpec | None:
        return self.parse_with_problem(name, record)[0]


POLICIES = ParsedPolicies()


@dataclass(frozen=True)
class Indices:
    """The operator's indices, by index function name (see handlers/indices.py)."""

    nodes: Index[str, NodeView]
    leases: Index[str, LeaseView]
    namespaces: Index[str, dict[str, str]]
    pods_by_node: Index[str, PodView]
    launchers: Index[str, PodView]
    vms: Index[tuple[str, str], VMView]
    vmis: Index[str, VMIView]
    claims: Index[tuple[str, str], ClaimView]
    policies: Index[str, dict[str, Any]]
    failovers: Index[str, FailoverRecord]

    @classmethod
    def current(cls) -> Indices:
        return cls.of(CACHES.indices)

    @classmethod
    def of(cls, kwargs: Mapping[str, Any]) -> Indices:
        return cls(
            nodes=kwargs["node_index"],
            leases=kwargs["lease_index"],
            namespaces=kwargs["namespace_index"],
            pods_by_node=kwargs["pods_by_node"],
            launchers=kwargs["launchers_by_vmi"],
            vms=kwargs["vm_index"],
            vmis=kwargs["vmi_index"],
            claims=kwargs["claim_index"],
            policies=kwargs["policy_index"],
            failovers=kwargs["failovers_by_node"],
        )
