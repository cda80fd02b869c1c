"""`ApiModel.replace` is the typed copy: it must reject what `model_copy(update=...)` lets through."""

import pytest
from pydantic import ValidationError

from kvha.models.nodefailover import FailoverVM, VMState


def _vm() -> FailoverVM:
    return FailoverVM(namespace="ns", name="vm", priority="Medium", from_node="n1")


def test_replace_applies_the_change_and_keeps_the_rest() -> None:
    moved = _vm().replace(planned_node="n2", state=VMState.RESTARTING)
    assert (moved.planned_node, moved.state, moved.from_node) == ("n2", VMState.RESTARTING, "n1")


def test_replace_rejects_a_misspelt_field() -> None:
    with pytest.raises(TypeError, match="plannd_node"):
        _vm().replace(plannd_node="n2")


def test_replace_validates_the_new_value() -> None:
    with pytest.raises(ValidationError):
        _vm().replace(attempts=-1)
