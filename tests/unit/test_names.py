"""Names kvha derives from node and policy names stay valid however long those are."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from kvha.models.names import LABEL_VALUE_MAX, OBJECT_NAME_MAX, label_value, object_name
from kvha.reconcile.policy import failover_name

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Node and policy names are DNS subdomains: labels of [a-z0-9-] joined by dots, up to 253 characters.
dns_label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)
subdomains = st.lists(dns_label, min_size=1, max_size=12).map(".".join).filter(lambda n: len(n) <= 253)


def test_short_names_are_kept_as_they_are() -> None:
    assert label_value("host-1") == "host-1"
    at = datetime(2026, 12, 2, 7, 30, tzinfo=UTC)
    assert failover_name(policy="production", node="host-1", detected_at=at) == "host-1-production-20261202-073000"


@given(subdomains)
def test_a_node_name_of_any_length_is_a_valid_label_value(node: str) -> None:
    value = label_value(node)
    assert len(value) <= LABEL_VALUE_MAX
    assert LABEL_VALUE.match(value), value
    assert value == node or len(node) > LABEL_VALUE_MAX


@given(subdomains, subdomains)
def test_a_failover_name_is_a_valid_object_name_and_tells_long_names_apart(node: str, policy: str) -> None:
    at = datetime(2026, 12, 2, 7, 30, tzinfo=UTC)
    name = failover_name(policy=policy, node=node, detected_at=at)
    assert len(name) <= OBJECT_NAME_MAX
    assert DNS_SUBDOMAIN.match(name), name
    assert failover_name(policy=policy, node=node, detected_at=at) == name, "deterministic"
    other = failover_name(policy=policy, node=node + "x" if len(node) < 253 else node[:-1], detected_at=at)
    assert other != name


def test_two_long_names_with_the_same_prefix_differ() -> None:
    base = "rack-07." + "a" * 60
    assert label_value(base + "1") != label_value(base + "2")
    assert object_name("n" * 200, "p" * 60, "1") != object_name("n" * 200, "p" * 60, "2")
