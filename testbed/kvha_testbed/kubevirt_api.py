"""KubeVirt's API as the testbed installs it: virt-operator's own CRDs, and virt-api's checks.

The CRDs come from virt-operator's generators (build.py's `kubevirt` recipe writes them), so
objects are validated by KubeVirt's real schema and VMs and VMIMs have a status subresource while
VMIs have none, exactly as in a cluster.

With real KubeVirt (the default, see kubevirt_components.py) virt-api's webhooks validate and
mutate. The simulated fallback has no virt-api, so its run-strategy checks are installed as a
ValidatingAdmissionPolicy (CEL, evaluated inside the real API server) with virt-api's messages.
"""

from __future__ import annotations

from pathlib import Path

from kvha_testbed.crds import load_crds, yaml_files
from kvha_testbed.kube import KubeClient, Obj, Resource


def kubevirt_crds(manifests: Path) -> list[Obj]:
    """KubeVirt's CRDs exactly as virt-operator installs them (status subresources, short names)."""
    crds = load_crds(yaml_files(manifests))
    names = {crd["metadata"]["name"] for crd in crds}
    for required in ("virtualmachines.kubevirt.io", "virtualmachineinstances.kubevirt.io", "kubevirts.kubevirt.io"):
        if required not in names:
            raise RuntimeError(f"{manifests} has no {required}; rebuild with `python -m kvha_testbed.build kubevirt`")
    return crds


VALID_RUN_STRATEGIES = ("Always", "Halted", "Manual", "RerunOnFailure", "Once")
VM_VALIDATION_POLICY = "kvha-testbed-virt-api-vm-validator"


def _vm_validation_policy() -> tuple[Obj, Obj]:
    """virt-api's run-strategy checks (vms-admitter.go validateRunStrategy) as CEL."""
    allowed = ", ".join(f"'{s}'" for s in VALID_RUN_STRATEGIES)
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": VM_VALIDATION_POLICY},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["kubevirt.io"],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["virtualmachines"],
                    }
                ]
            },
            "validations": [
                {
                    "expression": f"!has(object.spec.runStrategy) || object.spec.runStrategy in [{allowed}]",
                    "messageExpression": "'Invalid RunStrategy (' + string(object.spec.runStrategy) + ')'",
                    "reason": "Invalid",
                },
                {
                    "expression": "!(has(object.spec.running) && has(object.spec.runStrategy))",
                    "message": "Running and RunStrategy are mutually exclusive. "
                    "Note that Running is deprecated, please use RunStrategy instead",
                    "reason": "Invalid",
                },
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": VM_VALIDATION_POLICY},
        "spec": {"policyName": VM_VALIDATION_POLICY, "validationActions": ["Deny"]},
    }
    return policy, binding


def install_virt_api_validation(client: KubeClient) -> None:
    policy, binding = _vm_validation_policy()
    group = "admissionregistration.k8s.io"
    client.apply(
        Resource(group, "v1", "validatingadmissionpolicies", namespaced=False).path(name=VM_VALIDATION_POLICY), policy
    )
    client.apply(
        Resource(group, "v1", "validatingadmissionpolicybindings", namespaced=False).path(name=VM_VALIDATION_POLICY),
        binding,
    )
