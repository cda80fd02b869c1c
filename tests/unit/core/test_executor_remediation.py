"""Actuation of remediations: kvha's remediation names its incident as owner, a name already taken
is a failure (not success), and deletion is of the exact object kvha created."""

from __future__ import annotations

import asyncio
from typing import Any

from core.test_fencing import INCIDENT, TEMPLATE
from kvha.actuation import execute
from kvha.fencing import CreateRemediation, DeleteRemediation

# What discovery serves for the testbed's self-node-remediation CRDs.
PLURALS = {"SelfNodeRemediationTemplate": "selfnoderemediationtemplates", "SelfNodeRemediation": "selfnoderemediations"}


class FakeKube:
    """The calls remediation actuation makes, discovery of plurals included; `taken` says the name
    exists already."""

    def __init__(self, *, taken: bool = False) -> None:
        self.taken = taken
        self.created: list[dict[str, Any]] = []
        self.deleted: list[dict[str, Any]] = []

    async def plural(self, *, api_version: str, kind: str) -> str:
        assert api_version == TEMPLATE.api_version
        return PLURALS[kind]

    async def get_object(self, **_: Any) -> dict[str, Any]:
        return {"spec": {"template": {"spec": {"remediationStrategy": "OutOfServiceTaint"}}}}

    async def create_object(self, *, body: dict[str, Any], **_: Any) -> bool:
        self.created.append(body)
        return not self.taken

    async def delete_object(self, **call: Any) -> bool:
        self.deleted.append(call)
        return True


def test_the_remediation_kvha_creates_is_owned_by_the_incident() -> None:
    kube = FakeKube()
    failures = asyncio.run(
        execute(kube, [CreateRemediation(node="w1", template=TEMPLATE, name="w1", owner=INCIDENT)])  # type: ignore[arg-type]
    )
    assert failures == []
    [body] = kube.created
    assert body["kind"] == "SelfNodeRemediation", "the template's kind without Template"
    assert body["metadata"]["ownerReferences"] == [
        {"apiVersion": "kvha.io/v1alpha1", "kind": "NodeFailover", "name": INCIDENT.name, "uid": INCIDENT.uid}
    ]
    assert body["metadata"]["annotations"]["kvha.io/failover"] == INCIDENT.name
    assert body["spec"] == {"remediationStrategy": "OutOfServiceTaint"}


def test_a_name_already_taken_is_a_failed_action_not_success() -> None:
    kube = FakeKube(taken=True)
    [failure] = asyncio.run(
        execute(kube, [CreateRemediation(node="w1", template=TEMPLATE, name="w1", owner=INCIDENT)])  # type: ignore[arg-type]
    )
    assert "SelfNodeRemediation medik8s/w1 already exists" in failure.error


def test_deletion_is_of_the_object_kvha_created_by_its_uid() -> None:
    kube = FakeKube()
    asyncio.run(execute(kube, [DeleteRemediation(node="w1", name="w1", template=TEMPLATE, uid="r-1")]))  # type: ignore[arg-type]
    assert [(d["plural"], d["uid"]) for d in kube.deleted] == [("selfnoderemediations", "r-1")]
