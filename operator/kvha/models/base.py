"""Shared pydantic base and small API types (conditions, label selectors, int-or-percent).

Every kvha API type derives from `ApiModel`: camelCase on the wire, snake_case in Python, unknown
fields ignored so an older operator can read objects written by a newer one during an upgrade.
"""

from __future__ import annotations

import enum
import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_enum_values=False,
    )

    def to_api(self) -> dict[str, Any]:
        """The object as the Kubernetes API wants it: camelCase, no nulls, JSON types."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes` applied, validated like a freshly parsed object.

        `model_copy(update=...)` accepts any key and skips validation, so a misspelt field name
        (`plannd_node`) is silently stored as an extra attribute and the real field keeps its old
        value; this fails loudly instead, as `dataclasses.replace` does.
        """
        unknown = sorted(set(changes) - set(type(self).model_fields))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {', '.join(unknown)}")
        values = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self).model_validate({**values, **changes})


class Condition(ApiModel):
    """A metav1.Condition: the observable state users and tools (kubectl wait, Argo CD) read."""

    type: str = Field(min_length=1, max_length=316)
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = Field(default="", max_length=32768)
    last_transition_time: datetime
    observed_generation: int | None = Field(default=None, ge=0)


class SelectorOperator(enum.StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class SelectorRequirement(ApiModel):
    key: str = Field(min_length=1)
    operator: SelectorOperator
    values: list[str] = Field(default_factory=list)


class LabelSelector(ApiModel):
    """metav1.LabelSelector. An empty selector matches everything, as in Kubernetes."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[SelectorRequirement] = Field(default_factory=list)

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(key) != value for key, value in self.match_labels.items()):
            return False
        return all(_requirement_matches(req, labels) for req in self.match_expressions)


def _requirement_matches(req: SelectorRequirement, labels: dict[str, str]) -> bool:
    present = req.key in labels
    match req.operator:
        case SelectorOperator.IN:
            return present and labels[req.key] in req.values
        case SelectorOperator.NOT_IN:
            return not present or labels[req.key] not in req.values
        case SelectorOperator.EXISTS:
            return present
        case SelectorOperator.DOES_NOT_EXIST:
            return not present


INT_OR_PERCENT_PATTERN = r"^((100|[1-9]?[0-9])%|0|[1-9][0-9]*)$"
IntOrPercent = Annotated[
    int | str,
    Field(
        json_schema_extra={
            "x-kubernetes-int-or-string": True,
            # The apiserver accepts int-or-string only as exactly this anyOf; the value checks go in CEL.
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-validations": [
                {
                    "rule": f"type(self) == string ? self.matches('{INT_OR_PERCENT_PATTERN}') : self >= 0",
                    "message": "must be a non-negative integer or a percentage from 0% to 100%, such as 2 or 30%",
                }
            ],
        }
    ),
]


def resolve_int_or_percent(value: int | str, total: int) -> int:
    """Absolute count for `value` out of `total`; percentages round down (the cautious side
    for a limit: 30% of 5 nodes allows 1 unhealthy node, not 2)."""
    if isinstance(value, int):
        return max(value, 0)
    if not re.fullmatch(INT_OR_PERCENT_PATTERN, value):
        raise ValueError(f"expected an integer or a percentage such as 30%: {value!r}")
    if value.endswith("%"):
        return math.floor(int(value[:-1]) * total / 100)
    return int(value)


class Priority(enum.IntEnum):
    """Restart priority, as in vSphere HA. Disabled means the VM is never restarted by kvha."""

    DISABLED = 0
    LOWEST = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    HIGHEST = 5

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @classmethod
    def parse(cls, value: str) -> Priority:
        try:
            return cls[value.strip().upper()]
        except KeyError:
            names = ", ".join(p.label for p in cls)
            raise ValueError(f"unknown priority {value!r}; expected one of {names}") from None

    # The models hold a Priority (ordered, comparable) while the API and metrics keep the label
    # ("Medium"): one type in the code, the same strings on the wire as before.
    @classmethod
    def _from_wire(cls, value: object) -> Priority:
        if isinstance(value, Priority):
            return value
        if isinstance(value, str) and value in {p.label for p in cls}:
            return cls[value.upper()]
        raise ValueError(f"expected one of {', '.join(p.label for p in cls)}: {value!r}")

    @classmethod
    def __get_pydantic_core_schema__(cls, source: object, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._from_wire,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda p: p.label, when_used="json"),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"type": "string", "enum": [p.label for p in cls]}
