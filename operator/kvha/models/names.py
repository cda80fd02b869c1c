"""Names and label values kvha derives from node and policy names, within Kubernetes' limits.

A node or policy name may be 253 characters long (a DNS subdomain), but a label value holds at most
63 and an object name 253: a NodeFailover named after a long node and policy, or labelled with the
node's name, would be refused (422) and the node would get no incident at all. Whatever does not
fit keeps a readable prefix and ends in a hash of the whole, so it stays unique and deterministic
(a leader that crashed after creating an object finds it again by the same name).
"""

from __future__ import annotations

import hashlib

LABEL_VALUE_MAX = 63
OBJECT_NAME_MAX = 253
_HASH_LENGTH = 10


def _shortened(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:_HASH_LENGTH]
    # Label values and DNS names must start and end with an alphanumeric character.
    prefix = text[: limit - _HASH_LENGTH - 1].rstrip("-._")
    return f"{prefix}-{digest}"


def label_value(text: str) -> str:
    """`text` as a label value: itself when it fits, else a prefix and a hash of the whole."""
    return _shortened(text, LABEL_VALUE_MAX)


def object_name(*parts: str) -> str:
    """The parts joined with '-', as an object name: itself when it fits, else a prefix and a hash."""
    return _shortened("-".join(parts), OBJECT_NAME_MAX)
