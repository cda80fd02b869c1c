"""Resource names come from the API server's discovery, not from English: a CRD's plural is what
its author wrote (`Kube.plural`). One GET per group version, with the adapter's timeout, then cached."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from leadership.fakes import NoClient, Recorder

from kvha.k8s.api import Kube

GROUP_VERSION = "remediation.example.io/v1alpha1"
# The shape of GET /apis/<group>/<version>: plurals no rule of English would guess, and a
# subresource, which is not a kind's resource.
DISCOVERY = {
    "kind": "APIResourceList",
    "groupVersion": GROUP_VERSION,
    "resources": [
        {"name": "storagemice", "singularName": "storagemouse", "kind": "StorageMouse", "namespaced": True},
        {"name": "storagemice/status", "kind": "StorageMouse", "namespaced": True},
        {"name": "fencepolicies", "singularName": "fencepolicy", "kind": "FencePolicy", "namespaced": True},
    ],
}


def _kube(custom: object) -> Kube:
    kube = Kube(NoClient(), timeout=2.5)  # type: ignore[arg-type]
    kube.custom = custom  # type: ignore[assignment]
    return kube


def test_the_plural_is_the_one_discovery_serves_and_is_asked_once() -> None:
    custom = Recorder({"get_api_resources": DISCOVERY})
    kube = _kube(custom)

    async def both() -> list[str]:
        return [
            await kube.plural(api_version=GROUP_VERSION, kind="StorageMouse"),
            await kube.plural(api_version=GROUP_VERSION, kind="FencePolicy"),
            await kube.plural(api_version=GROUP_VERSION, kind="StorageMouse"),
        ]

    assert asyncio.run(both()) == ["storagemice", "fencepolicies", "storagemice"]
    assert custom.calls == [("get_api_resources", ("remediation.example.io", "v1alpha1"), {"_request_timeout": 2.5})]


def test_a_kind_not_served_is_a_lookup_error_asked_again_next_time() -> None:
    custom = Recorder({"get_api_resources": DISCOVERY})
    kube = _kube(custom)
    for _ in range(2):
        with pytest.raises(LookupError, match=r"serves no Unknown in remediation\.example\.io/v1alpha1"):
            asyncio.run(kube.plural(api_version=GROUP_VERSION, kind="Unknown"))
    assert len(custom.calls) == 2, "a CRD installed since must be found"


class _NotServed:
    def get_api_resources(self, *_: Any, **__: Any) -> Any:
        raise ApiException(status=404, reason="Not Found")


def test_a_group_version_not_served_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match="is its CRD installed"):
        asyncio.run(_kube(_NotServed()).plural(api_version=GROUP_VERSION, kind="StorageMouse"))
