"""Least-privilege RBAC, checked three ways against one table (kvha.k8s.permissions):

* the code → the table: every API call in k8s/api.py and k8s/leader.py, every kopf watch, patch
  and event in the handlers, is derived from the source (AST) and must have an entry pointing at
  the function that makes it. A call added without RBAC fails here, not in production;
* the table → the code: every entry must point at code that makes that call (no stale grants);
* every rule of the chart's RBAC template carries a comment saying why.

That the rendered chart grants exactly the table, without wildcards, needs helm: it is checked in
tests/integration/chart/test_chart_rbac.py.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from install_testing import ROOT
from kvha import constants
from kvha.k8s.permissions import NEVER_GRANTED, PERMISSIONS, Permission, Triple, triples

PACKAGE = ROOT / "operator" / "kvha"
CLIENT_MODULES = ("kvha.k8s.api", "kvha.k8s.leader")
HANDLERS = PACKAGE / "handlers"
ANY = "*"  # a group or resource the call takes as a parameter (remediation templates, patch_status)

# The kubernetes client's API classes kvha uses, by API group; a new class must be added here.
API_CLASSES = {"CoreV1Api": "", "CoordinationV1Api": "coordination.k8s.io", "CustomObjectsApi": None}
TYPED_VERBS = {
    "read": "get",
    "create": "create",
    "replace": "update",
    "patch": "patch",
    "delete": "delete",
    "list": "list",
    "watch": "watch",
    "delete_collection": "deletecollection",
}
TYPED_METHOD = re.compile(
    r"^(?P<verb>delete_collection|read|create|replace|patch|delete|list|watch)_(?:namespaced_)?"
    r"(?P<kind>[a-z_]+?)(?P<status>_status)?(?:_for_all_namespaces)?$"
)
CUSTOM_METHOD = re.compile(
    r"^(?P<verb>get|create|patch|replace|delete|list)_(?P<scope>namespaced|cluster)_custom_object(?P<status>_status)?$"
)
# API discovery (GET /apis/<group>/<version>) is a non-resource URL that Kubernetes' default
# system:discovery role lets every authenticated user read: the chart grants nothing for it.
DISCOVERY_METHODS = {"get_api_resources"}
KOPF_WATCHING = {"index", "event"}
KOPF_CHANGING = {"create", "update", "delete", "resume", "field", "timer", "daemon"}
KOPF_EVENTS = {"event", "info", "warn", "exception"}


@dataclass(frozen=True)
class Use:
    """One permission the code needs, and where."""

    pointer: str  # "module:qualname"
    triple: Triple


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT / "operator").with_suffix("").parts)


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _functions(tree: ast.Module) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    found: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append((node.name, node))
        elif isinstance(node, ast.ClassDef):
            found += [
                (f"{node.name}.{item.name}", item)
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            ]
    return found


def _api_attributes(tree: ast.Module) -> dict[str, str]:
    """`self.core = client.CoreV1Api(...)` → {"core": "CoreV1Api"}."""
    attributes: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            cls = _dotted(node.value.func).rsplit(".", 1)[-1]
            if cls.endswith("Api") and cls != "ApiClient":
                assert cls in API_CLASSES, f"the RBAC scan does not know {cls}: add it to API_CLASSES"
                for target in node.targets:
                    if isinstance(target, ast.Attribute):
                        attributes[target.attr] = cls
    return attributes


class _Resolver:
    """Values of a call's arguments: string literals and kvha constants; parameters and locals → ANY."""

    def __init__(self, module: Any, function: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.module = module
        self.local_names = {a.arg for a in (*function.args.args, *function.args.kwonlyargs)}
        self.tuples: dict[str, list[ast.expr]] = {}
        for node in ast.walk(function):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name):
                            self.local_names.add(name.id)
                    if isinstance(target, ast.Name) and isinstance(node.value, ast.Tuple):
                        self.tuples[target.id] = list(node.value.elts)

    def args(self, call_args: list[ast.expr]) -> list[ast.expr]:
        expanded: list[ast.expr] = []
        for arg in call_args:
            starred = arg.value if isinstance(arg, ast.Starred) else None
            if isinstance(starred, ast.Name) and starred.id in self.tuples:
                expanded += self.tuples[starred.id]
            else:
                expanded.append(arg)
        return expanded

    def value(self, node: ast.expr | None) -> str:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name) and node.id not in self.local_names:
            value = getattr(self.module, node.id, None)
            if isinstance(value, str):
                return value
        return ANY


def _client_uses(module_name: str) -> list[Use]:
    """The API calls of one client module, from method names and (for custom objects) arguments."""
    module = importlib.import_module(module_name)
    tree = ast.parse(Path(module.__file__ or "").read_text())
    attributes = _api_attributes(tree)
    uses: list[Use] = []
    for qualname, function in _functions(tree):
        resolver = _Resolver(module, function)
        pointer = f"{module_name}:{qualname}"
        parents = {child: parent for parent in ast.walk(function) for child in ast.iter_child_nodes(parent)}
        for node in ast.walk(function):
            if not (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute)
                and node.value.attr in attributes
            ):
                continue
            cls, method = attributes[node.value.attr], node.attr
            # Called directly, or handed to asyncio.to_thread(method, *args).
            parent = parents.get(node)
            call_args: list[ast.expr] = []
            if isinstance(parent, ast.Call) and parent.func is node:
                call_args = resolver.args(parent.args)
            elif isinstance(parent, ast.Call) and _dotted(parent.func).endswith("to_thread"):
                call_args = resolver.args(parent.args[1:])
            if API_CLASSES[cls] is not None:
                match = TYPED_METHOD.match(method)
                assert match, f"{pointer}: cannot tell the RBAC of {cls}.{method}; extend the scan"
                resource = match["kind"].replace("_", "") + "s" + ("/status" if match["status"] else "")
                uses.append(Use(pointer, (API_CLASSES[cls] or "", resource, TYPED_VERBS[match["verb"]])))
                continue
            if method in DISCOVERY_METHODS:
                continue
            match = CUSTOM_METHOD.match(method)
            assert match, f"{pointer}: cannot tell the RBAC of {cls}.{method}; extend the scan"
            plural_at = 3 if match["scope"] == "namespaced" else 2
            group = resolver.value(call_args[0]) if call_args else ANY
            plural = resolver.value(call_args[plural_at]) if len(call_args) > plural_at else ANY
            verb = TYPED_VERBS.get(match["verb"], match["verb"])
            uses.append(Use(pointer, (group, plural + ("/status" if match["status"] else ""), verb)))
    return uses


def _selector(decorator: ast.Call) -> tuple[str, str]:
    """(group, plural) of a kopf decorator: (group, version, plural) or ("group/version", plural) …"""
    values = [_constant(arg) for arg in decorator.args]
    keywords = {k.arg: _constant(k.value) for k in decorator.keywords if k.arg in ("group", "plural")}
    if "plural" in keywords:
        return keywords.get("group", ""), keywords["plural"]
    if len(values) == 3:
        return values[0], values[2]
    if len(values) == 2:
        return values[0].split("/")[0] if "/" in values[0] and values[0] != "v1" else values[0], values[1]
    if len(values) == 1 and "." in values[0]:
        plural, group = values[0].split(".", 1)
        return group, plural
    raise AssertionError(f"cannot read the resource of kopf decorator {ast.unparse(decorator)}")


def _constant(node: ast.expr) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and isinstance(getattr(constants, node.id, None), str):
        return str(getattr(constants, node.id))
    raise AssertionError(f"the RBAC scan cannot resolve {ast.unparse(node)}; use a kvha.constants name")


def _handler_uses(path: Path, *, module_name: str | None = None) -> list[Use]:
    """kopf watches (list, watch), changes (patch: finalizer, progress annotations), events (create)."""
    module_name = module_name or _module_name(path)
    uses: list[Use] = []
    for qualname, function in _functions(ast.parse(path.read_text())):
        pointer = f"{module_name}:{qualname}"
        for decorator in function.decorator_list:
            if not isinstance(decorator, ast.Call):
                continue
            name = _dotted(decorator.func)
            kind = name.rsplit(".", 1)[-1]
            # `index` alone is kvha's own cache decorator (kvha.k8s.informer): it lists and watches.
            if not (name.startswith("kopf.") and kind in KOPF_WATCHING | KOPF_CHANGING) and name != "index":
                continue
            group, plural = _selector(decorator)
            group = "" if group == "v1" else group
            verbs = ["list", "watch"]
            parameters = {a.arg for a in (*function.args.args, *function.args.kwonlyargs)}
            if kind in KOPF_CHANGING or "patch" in parameters:  # kopf applies the handler's patch
                verbs.append("patch")
            uses += [Use(pointer, (group, plural, verb)) for verb in verbs]
        for node in ast.walk(function):
            if isinstance(node, ast.Call) and _dotted(node.func) in {f"kopf.{e}" for e in KOPF_EVENTS}:
                uses.append(Use(pointer, ("", "events", "create")))
    return uses


def code_uses() -> list[Use]:
    uses = [use for module in CLIENT_MODULES for use in _client_uses(module)]
    for path in sorted(HANDLERS.glob("*.py")):
        uses += _handler_uses(path)
    return uses


def _matches(granted: Triple, used: Triple) -> bool:
    """Whether a table triple covers a derived one (ANY in the derived triple is a parameter)."""
    group, resource, verb = used
    resource_ok = (
        resource == granted[1] or resource == ANY or (resource == f"{ANY}/status" and granted[1].endswith("/status"))
    )
    return verb == granted[2] and group in (ANY, granted[0]) and resource_ok


def _points_at(permission: Permission, pointer: str) -> bool:
    module = pointer.split(":", maxsplit=1)[0]
    return pointer in permission.used_by or module in permission.used_by


# --------------------------------------------------------------------------------------- tests


def test_the_scan_sees_the_calls_it_should() -> None:
    """Guard the scanner itself: a few calls we know are there must be found."""
    uses = {(u.pointer, u.triple) for u in code_uses()}
    assert ("kvha.k8s.api:Kube.set_out_of_service_taint", ("", "nodes", "patch")) in uses
    assert ("kvha.k8s.api:Kube.force_delete_pod", ("", "pods", "delete")) in uses
    assert ("kvha.k8s.api:Kube.create_nodefailover", ("kvha.io", "nodefailovers", "create")) in uses
    assert ("kvha.k8s.leader:LeaderElector.release", ("coordination.k8s.io", "leases", "update")) in uses
    assert ("kvha.handlers.indices:node_index", ("", "nodes", "watch")) in uses
    assert ("kvha.handlers.events:post", ("", "events", "create")) in uses


def _unpermitted(uses: list[Use]) -> list[str]:
    return [
        f"{use.pointer} needs {use.triple}"
        for use in uses
        if not any(
            _points_at(p, use.pointer) and any(_matches(t, use.triple) for t in p.triples()) for p in PERMISSIONS
        )
    ]


def test_a_call_without_rbac_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What happens when someone adds a call to k8s/api.py and forgets the RBAC."""
    (tmp_path / "kvha_rbac_probe.py").write_text(
        "from kubernetes import client\n"
        "from kvha.constants import KUBEVIRT_GROUP\n"
        "class Kube:\n"
        "    def __init__(self, api_client):\n"
        "        self.core = client.CoreV1Api(api_client)\n"
        "        self.custom = client.CustomObjectsApi(api_client)\n"
        "    def set_out_of_service_taint(self, node):\n"
        "        self.core.delete_node(node)\n"
        "    def stop_vm(self, namespace, name):\n"
        "        self.custom.delete_namespaced_custom_object(\n"
        "            KUBEVIRT_GROUP, 'v1', namespace, 'virtualmachines', name)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    found = _unpermitted(_client_uses("kvha_rbac_probe"))
    assert found == [
        "kvha_rbac_probe:Kube.set_out_of_service_taint needs ('', 'nodes', 'delete')",
        "kvha_rbac_probe:Kube.stop_vm needs ('kubevirt.io', 'virtualmachines', 'delete')",
    ]


def test_a_handler_without_rbac_is_caught(tmp_path: Path) -> None:
    probe = tmp_path / "probe_handlers.py"
    probe.write_text(
        "import kopf\n"
        "@kopf.on.update('', 'v1', 'configmaps')\n"
        "def on_config(body, **_):\n"
        "    kopf.info(body, reason='Seen', message='seen')\n"
    )
    uses = _handler_uses(probe, module_name="probe")
    expected = [
        ("", "configmaps", "list"),
        ("", "configmaps", "watch"),
        ("", "configmaps", "patch"),
        ("", "events", "create"),
    ]
    assert sorted(_unpermitted(uses)) == sorted(f"probe:on_config needs {triple}" for triple in expected)


def test_every_call_the_code_makes_is_in_the_table() -> None:
    missing = _unpermitted(code_uses())
    assert not missing, (
        "API calls without an entry in kvha/k8s/permissions.py (add it there and to the "
        "chart's ClusterRole/Role):\n" + "\n".join(missing)
    )


def test_every_entry_points_at_code_that_uses_it() -> None:
    by_pointer: dict[str, list[Triple]] = defaultdict(list)
    for use in code_uses():
        by_pointer[use.pointer].append(use.triple)
        by_pointer[use.pointer.split(":")[0]].append(use.triple)
    stale = []
    for permission in PERMISSIONS:
        framework = [p for p in permission.used_by if p.startswith("kopf")]
        for pointer in framework:  # kopf's own needs: the pointer must at least exist
            module, _, name = pointer.partition(":")
            assert hasattr(importlib.import_module(module), name), f"{pointer} does not exist"
        ours = [p for p in permission.used_by if p not in framework]
        for granted in permission.triples():
            needed = any(_matches(granted, used) for p in ours for used in by_pointer[p])
            if ours and not framework and not needed:
                stale.append(f"{granted}: none of {ours} needs it")
        for pointer in ours:
            if not any(_matches(t, used) for t in permission.triples() for used in by_pointer[pointer]):
                stale.append(f"{pointer} needs none of {sorted(permission.triples())}")
    assert not stale, "kvha/k8s/permissions.py grants what the code does not use:\n" + "\n".join(stale)


def test_only_the_scanned_modules_talk_to_the_api() -> None:
    """The scan is complete only if no other module constructs a client API or a kopf handler."""
    scanned = {PACKAGE / "k8s" / "api.py", PACKAGE / "k8s" / "leader.py"}
    # `kvha plan` and `kvha status` list with the user's kubeconfig, never the operator's account.
    users_own = {PACKAGE / "k8s" / "listing.py"}
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        if path not in scanned | users_own:
            assert not re.search(r"\b\w+V\d\w*Api\(|CustomObjectsApi\(", text), f"{path}: API client"
        if path.parent != HANDLERS:
            assert not re.search(r"@kopf\.(on|index|timer|daemon)", text), f"{path}: kopf handler"


@pytest.mark.parametrize("template", ["clusterrole.yaml", "role.yaml"])
def test_every_rule_says_why(chart: Any, template: str) -> None:
    lines = (chart.CHART / "templates" / template).read_text().splitlines()
    rules = [i for i, line in enumerate(lines) if line.strip().startswith("- apiGroups:")]
    assert rules
    for index in rules:
        assert lines[index - 1].strip().startswith("#"), f"{template}:{index + 1}: rule without a comment"


def test_nothing_dangerous_is_granted() -> None:
    granted = triples()
    for forbidden in NEVER_GRANTED:
        assert forbidden not in granted, forbidden
