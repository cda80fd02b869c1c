"""KubeVirt's API as the testbed installs it: real schemas, virt-operator's extras, virt-api's checks.

The CRDs come from controller-gen over `kubevirt.io/api` (see build.py), so objects are validated by
KubeVirt's own OpenAPI schema. Three things a real installation has are not in that output:

* virt-operator adds a status subresource to VirtualMachine and VirtualMachineInstanceMigration
  (never to VirtualMachineInstance), short names (`vm`, `vmi`, `vmim`) and printer columns;
  `patch_for_virt_operator` adds the same, so writes to `.status` behave as in a real cluster.
* controller-gen also emits `datavolumetemplatespecs.kubevirt.io`, which is not a real resource
  (a type embedded in VirtualMachine); it is skipped.
* `spec.runStrategy` is a plain string in the schema: virt-api's validating webhook is what rejects
  "Sometimes". There is no virt-api here, so the same rules are installed as a
  ValidatingAdmissionPolicy (CEL, evaluated inside the real API server) with virt-api's messages.
"""

from __future__ import annotations

import copy
from pathlib import Path

from kvha_testbed.crds import load_crds, yaml_files
from kvha_testbed.kube import KubeClient, Obj, Resource

NOT_REAL_CRDS = frozenset({"datavolumetemplatespecs.kubevirt.io"})

# What virt-operator's generators (pkg/virt-operator/resource/generate/components/crds.go) add.
_OPERATOR_EXTRAS: dict[str, dict[str, object]] = {
    "virtualmachines.kubevirt.io": {
        "shortNames": ["vm", "vms"],
        "status": True,
        "columns": [("Status", ".status.printableStatus"), ("Ready", ".status.conditions[?(@.type=='Ready')].status")],
    },
    "virtualmachineinstances.kubevirt.io": {
        "shortNames": ["vmi", "vmis"],
        "status": False,
        "columns": [
            ("Phase", ".status.phase"),
            ("NodeName", ".status.nodeName"),
            ("Ready", ".status.conditions[?(@.type=='Ready')].status"),
        ],
    },
    "virtualmachineinstancemigrations.kubevirt.io": {
        "shortNames": ["vmim", "vmims"],
        "status": True,
        "columns": [("Phase", ".status.phase")],
    },
    "virtualmachineinstancereplicasets.kubevirt.io": {"shortNames": ["vmirs", "vmirss"], "status": True},
    "virtualmachineinstancepresets.kubevirt.io": {"shortNames": ["vmipreset", "vmipresets"]},
    "kubevirts.kubevirt.io": {"shortNames": ["kv", "kvs"], "status": True},
}

VALID_RUN_STRATEGIES = ("Always", "Halted", "Manual", "RerunOnFailure", "Once")
VM_VALIDATION_POLICY = "kvha-testbed-virt-api-vm-validator"


def patch_for_virt_operator(crd: Obj) -> Obj:
    """Return a copy of a controller-gen CRD with what virt-operator would add to it."""
    crd = copy.deepcopy(crd)
    extras = _OPERATOR_EXTRAS.get(crd["metadata"]["name"], {})
    names = crd["spec"]["names"]
    if "shortNames" in extras:
        names["shortNames"] = extras["shortNames"]
    names["categories"] = ["all"]
    for version in crd["spec"]["versions"]:
        if extras.get("status"):
            version.setdefault("subresources", {})["status"] = {}
        columns = extras.get("columns")
        if isinstance(columns, list):
            version["additionalPrinterColumns"] = [
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                *({"name": title, "type": "string", "jsonPath": path} for title, path in columns),
            ]
    return crd


def kubevirt_crds(directory: Path) -> list[Obj]:
    """The real KubeVirt CRDs from the build cache, patched as virt-operator would install them."""
    crds = [
        patch_for_virt_operator(crd)
        for crd in load_crds(yaml_files(directory))
        if crd["metadata"]["name"] not in NOT_REAL_CRDS
    ]
    names = {crd["metadata"]["name"] for crd in crds}
    for required in ("virtualmachines.kubevirt.io", "virtualmachineinstances.kubevirt.io"):
        if required not in names:
            raise RuntimeError(
                f"{directory} has no {required}; rebuild with `python -m kvha_testbed.cli build kubevirt-crds`"
            )
    return crds


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
