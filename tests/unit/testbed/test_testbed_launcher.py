"""launcher_requests: what a VM asks the scheduler for, per KubeVirt's overhead formula."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvha_testbed.sim.launcher import launcher_pod, launcher_pod_name, launcher_requests, memory_overhead
from kvha_testbed.sim.quantity import MI, format_cpu, format_memory, parse_quantity


def _spec(*, memory: str = "2Gi", cores: int = 2, **domain: object) -> dict:
    return {"domain": {"cpu": {"cores": cores}, "resources": {"requests": {"memory": memory}}, "devices": {}, **domain}}


def test_overhead_matches_kubevirts_worked_example() -> None:
    # KubeVirt's renderresources test: 2Gi, 2 vCPUs -> 4Mi page tables + 220Mi + 16Mi + 8Mi + 32Mi.
    assert memory_overhead(_spec()) == 280 * MI


def test_requests_add_overhead_and_use_the_cpu_allocation_ratio() -> None:
    resources = launcher_requests(_spec(memory="4Gi", cores=2))
    assert resources["requests"] == {"cpu": "200m", "memory": f"{4096 + 8 + 276}Mi", "devices.kubevirt.io/kvm": "1"}
    assert resources["limits"] == {"devices.kubevirt.io/kvm": "1"}
    assert launcher_requests(_spec(cores=4), cpu_allocation_ratio=1)["requests"]["cpu"] == "4000m"


def test_vcpus_multiply_sockets_threads_and_cores() -> None:
    spec = _spec(cores=2)
    spec["domain"]["cpu"].update(sockets=2, threads=2)
    assert launcher_requests(spec)["requests"]["cpu"] == "800m"


def test_explicit_cpu_request_and_dedicated_placement_win() -> None:
    explicit = _spec(cores=4)
    explicit["domain"]["resources"]["requests"]["cpu"] = "1500m"
    assert launcher_requests(explicit)["requests"]["cpu"] == "1500m"
    dedicated = _spec(cores=3)
    dedicated["domain"]["cpu"]["dedicatedCpuPlacement"] = True
    resources = launcher_requests(dedicated)
    assert resources["requests"]["cpu"] == resources["limits"]["cpu"] == "3000m"


def test_guest_memory_falls_back_to_domain_memory_and_limits_get_overhead() -> None:
    spec = {"domain": {"memory": {"guest": "1Gi"}, "resources": {"limits": {"memory": "2Gi"}}, "devices": {}}}
    overhead = memory_overhead(spec)
    resources = launcher_requests(spec)
    assert resources["requests"]["memory"] == format_memory(parse_quantity("1Gi") + overhead)
    assert resources["limits"]["memory"] == format_memory(parse_quantity("2Gi") + overhead)
    with pytest.raises(ValueError, match="neither"):
        launcher_requests({"domain": {"devices": {}}})


@given(st.integers(min_value=1, max_value=1 << 40), st.integers(min_value=1, max_value=64))
def test_request_always_covers_guest_plus_static_overhead(guest_bytes: int, cores: int) -> None:
    spec = {"domain": {"cpu": {"cores": cores}, "memory": {"guest": str(guest_bytes)}, "devices": {}}}
    requested = parse_quantity(launcher_requests(spec)["requests"]["memory"])
    assert requested >= guest_bytes + Fraction(guest_bytes, 512) + (220 + 8 * cores + 40) * MI
    assert requested - (guest_bytes + memory_overhead(spec)) < MI  # rounded up to whole MiB only


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2Gi", 2 << 30),
        ("500m", Fraction(1, 2)),
        ("1.5", Fraction(3, 2)),
        ("1e3", 1000),
        ("128974848", 128974848),
        ("1k", 1000),
    ],
)
def test_quantities(text: str, value: Fraction) -> None:
    assert parse_quantity(text) == value


def test_quantity_formatting_rounds_up() -> None:
    assert format_cpu(Fraction(1, 3)) == "334m"
    assert format_memory(MI + 1) == "2Mi"
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity("two")


def test_launcher_pod_carries_kubevirts_labels_owner_and_placement() -> None:
    vmi = {
        "metadata": {"name": "db", "namespace": "prod", "uid": "u-1", "labels": {"app": "db"}},
        "spec": {
            **_spec(),
            "nodeSelector": {"zone": "a", "kubevirt.io/schedulable": "false"},
            "tolerations": [{"key": "k", "operator": "Exists"}],
            "affinity": {"nodeAffinity": {}},
            "terminationGracePeriodSeconds": 30,
        },
    }
    pod = launcher_pod(vmi)
    assert pod["metadata"]["name"] == launcher_pod_name("db", "u-1")
    assert pod["metadata"]["name"].startswith("virt-launcher-db-")
    assert len(pod["metadata"]["name"]) == 22
    assert pod["metadata"]["labels"] == {
        "app": "db",
        "kubevirt.io": "virt-launcher",
        "kubevirt.io/created-by": "u-1",
        "vm.kubevirt.io/name": "db",
    }
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "VirtualMachineInstance"
    assert pod["spec"]["nodeSelector"] == {"zone": "a", "kubevirt.io/schedulable": "true"}
    assert pod["spec"]["tolerations"] == vmi["spec"]["tolerations"]
    assert pod["spec"]["affinity"] == {"nodeAffinity": {}}
    assert pod["spec"]["terminationGracePeriodSeconds"] == 45
