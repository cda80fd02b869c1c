"""Build the testbed's binaries from Go modules and cache them by version.

There is no Docker engine and no way to download release binaries here, so the real control plane
(etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl), kwok and helm are compiled
with the machine's Go from the module proxy.  Each component gets its own throw-away "tools" module
because their dependency graphs disagree (Go picks one version per module).  Results live under the
user cache directory keyed by version, so a second run takes seconds.

The Kubernetes binaries are linked as one multi-call executable: linking is the slow and
memory-hungry step (about 2 GiB per link), and the three commands share almost all their code.

KubeVirt's virt-controller and virt-api are built from kubevirt.io/kubevirt itself, in a wrapper module
that repeats KubeVirt's replace lines (a dependency's replaces do not apply to its consumers).  The
same module holds a small program that writes what virt-operator would install (CRDs, RBAC, webhook
configurations) with virt-operator's own generators, so the testbed's KubeVirt API is the real one.

Standard library only: it runs before the project's virtual environment exists.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

K8S_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.8"
KWOK_VERSION = "v0.8.0"
HELM_VERSION = "v4.2.4"
# The newest KubeVirt the module proxy serves (v1.7.1 and v1.7.2 are tagged but not served);
# kubevirt.io/api and kubevirt.io/client-go are its staging modules, pinned to the same tag.
KUBEVIRT_VERSION = "v1.7.0"
KUBEVIRT_COMMANDS = ("virt-controller", "virt-api")
KUBEVIRT_NAMESPACE = "kubevirt"

KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")

GO_PROXY = os.environ.get("GOPROXY", "https://proxy.golang.org").split(",")[0]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kvha-testbed"


@dataclass(frozen=True)
class Assets:
    """Where each binary is; resolved from KUBEBUILDER_ASSETS first, then the cache."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    kwok: Path
    helm: Path
    virt_controller: Path
    virt_api: Path
    # crds.yaml, rbac.yaml, webhooks.yaml, admission-policies.yaml from virt-operator's generators
    kubevirt_manifests: Path

    def missing(self) -> list[Path]:
        return [p for p in self.__dict__.values() if not p.exists()]


def _log(msg: str) -> None:
    print(f"[testbed-build {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _bin_dir(component: str, version: str) -> Path:
    return cache_root() / "bin" / f"{component}-{version}"


def resolve_assets() -> Assets:
    """Locate binaries without building anything.

    KUBEBUILDER_ASSETS (the envtest convention) wins for the control plane when it holds
    etcd and kube-apiserver; whatever it lacks falls back to our cache.
    """
    kube = _bin_dir("kubernetes", K8S_VERSION)
    found = {
        "etcd": _bin_dir("etcd", ETCD_VERSION) / "etcd",
        "kube_apiserver": kube / "kube-apiserver",
        "kube_controller_manager": kube / "kube-controller-manager",
        "kube_scheduler": kube / "kube-scheduler",
        "kubectl": kube / "kubectl",
        "kwok": _bin_dir("kwok", KWOK_VERSION) / "kwok",
        "helm": _bin_dir("helm", HELM_VERSION) / "helm",
        "virt_controller": _bin_dir("kubevirt", KUBEVIRT_VERSION) / "virt-controller",
        "virt_api": _bin_dir("kubevirt", KUBEVIRT_VERSION) / "virt-api",
        "kubevirt_manifests": _bin_dir("kubevirt", KUBEVIRT_VERSION) / "manifests",
    }
    assets_dir = os.environ.get("KUBEBUILDER_ASSETS")
    if assets_dir:
        for key in list(found):
            candidate = Path(assets_dir) / key.replace("_", "-")
            if candidate.exists():
                found[key] = candidate
    for env, key in (("TEST_ASSET_KUBE_APISERVER", "kube_apiserver"), ("TEST_ASSET_ETCD", "etcd")):
        if os.environ.get(env):
            found[key] = Path(os.environ[env])
    return Assets(**found)


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CGO_ENABLED", "0")
    env.setdefault("GOTOOLCHAIN", "local")
    env.setdefault("GOFLAGS", "-buildvcs=false")
    return env


class RecipeError(SystemExit):
    """A go command of a recipe failed; the message names the command, the exit code and go's output."""


def _run(cmd: list[str], cwd: Path) -> None:
    _log("$ " + " ".join(cmd))
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=_go_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        if line.startswith("go: downloading"):
            continue  # hundreds of these on a cold module cache, and never the reason for a failure
        tail = [*tail, line.rstrip()][-40:]
    code = proc.wait()
    _log(f"  done in {time.monotonic() - started:.0f}s (exit {code})")
    if code != 0:
        output = "\n".join(f"    {line}" for line in tail)
        raise RecipeError(f"{' '.join(cmd)} (exit {code}) in {cwd}\n{output}")


def _tools_module(root: Path, name: str, go_mod: str, files: dict[str, str]) -> Path:
    """A fresh tools module under `root`: go.mod plus the Go files that import what is built."""
    src = root / "src" / name
    shutil.rmtree(src, ignore_errors=True)  # a go.sum from an older recipe must not mask a new one
    src.mkdir(parents=True)
    (src / "go.mod").write_text(go_mod)
    for file_name, text in files.items():
        (src / file_name).parent.mkdir(parents=True, exist_ok=True)
        (src / file_name).write_text(text)
    return src


def _fetch_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=120) as resp:  # noqa: S310 - fixed proxy URL
        return str(resp.read().decode())


def _install(built: Path, dest_dir: Path, names: tuple[str, ...]) -> None:
    staging = dest_dir.with_suffix(".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copy2(built, staging / names[0])
    for alias in names[1:]:
        (staging / alias).symlink_to(names[0])
    shutil.rmtree(dest_dir, ignore_errors=True)
    staging.rename(dest_dir)  # atomic: a half-built cache entry is never visible


KUBE_MAIN = """// Multi-call binary: one link for the apiserver, controller-manager, scheduler and kubectl.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	switch filepath.Base(os.Args[0]) {
	case "kube-apiserver":
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	case "kube-controller-manager":
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	case "kube-scheduler":
		os.Exit(cli.Run(scheduler.NewSchedulerCommand()))
	case "kubectl":
		if err := cli.RunNoErrOutput(kubectlcmd.NewDefaultKubectlCommand()); err != nil {
			kubectlutil.CheckErr(err)
		}
	default:
		fmt.Fprintln(os.Stderr, "call as kube-apiserver, kube-controller-manager, kube-scheduler or kubectl")
		os.Exit(2)
	}
}
"""


def staging_modules_of(go_mod: str) -> list[str]:
    """The staging modules a Kubernetes go.mod requires: those pinned at exactly ``v0.0.0``.

    ``k8s.io/utils`` and ``k8s.io/kube-openapi`` are required at pseudo-versions that also start
    with ``v0.0.0`` (``v0.0.0-2026…``); they are ordinary modules with no ``v0.36.x`` tag, so the
    version must end right after the third zero.
    """
    return sorted(set(re.findall(r"^\s*(?:require\s+)?(k8s\.io/[\w.-]+) v0\.0\.0[ \t]*(?://.*)?$", go_mod, re.M)))


def _tools_import(*packages: str) -> dict[str, str]:
    imports = "".join(f'\t_ "{package}"\n' for package in packages)
    return {"tools.go": f"//go:build tools\n\npackage tools\n\nimport (\n{imports})\n"}


@dataclass(frozen=True)
class Recipe:
    """How one component is built: resolve its tools module, then compile what the cache keeps.

    `resolve` is everything that depends on the module proxy (which versions exist, what their
    module graphs require); `compile` is the long part that only uses what `resolve` downloaded.
    The recipe check runs `resolve` alone from an empty cache root, so a version the proxy no
    longer serves fails in a minute instead of hiding behind a cached binary.
    """

    component: str
    version: str
    resolve: Callable[[Path], Path]  # cache root -> resolved tools module directory
    compile: Callable[[Path], None]  # resolved tools module -> installed under _bin_dir()
    built: Callable[[], bool]
    packages: tuple[str, ...]  # what is compiled: `go list -deps` proves each one loads

    def build(self) -> None:
        if self.built():
            _log(f"{self.component} {self.version}: cached")
            return
        _log(f"{self.component} {self.version}: resolving modules")
        src = self.resolve(cache_root())
        _log(f"{self.component} {self.version}: compiling")
        self.compile(src)

    def check(self, root: Path) -> None:
        """Resolve from scratch under `root` and load every package of the build, compiling nothing."""
        src = self.resolve(root)
        _run(["go", "list", "-deps", "-test=false", *self.packages], src)


def _resolve_kubernetes(root: Path) -> Path:
    upstream_mod = _fetch_text(f"{GO_PROXY}/k8s.io/kubernetes/@v/{K8S_VERSION}.mod")
    staging_modules = staging_modules_of(upstream_mod)
    staging_version = "v0." + K8S_VERSION.removeprefix("v1.")
    replaces = "\n".join(f"\t{m} => {m} {staging_version}" for m in staging_modules)
    go_mod = (
        f"module kvhatestbed/kubernetes\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes {K8S_VERSION}\n\n"
        f"replace (\n{replaces}\n)\n"
    )
    src = _tools_module(root, "kubernetes", go_mod, {"main.go": KUBE_MAIN})
    _log(f"kubernetes {K8S_VERSION}: {len(staging_modules)} staging modules (a cold module cache downloads ~1 GiB)")
    _run(["go", "mod", "tidy"], src)
    return src


def _compile_kubernetes(src: Path) -> None:
    major, minor = K8S_VERSION.removeprefix("v").split(".")[:2]
    ldflags = " ".join(
        [
            "-s",
            "-w",
            f"-X k8s.io/component-base/version.gitVersion={K8S_VERSION}",
            f"-X k8s.io/component-base/version.gitMajor={major}",
            f"-X k8s.io/component-base/version.gitMinor={minor}",
            "-X k8s.io/component-base/version.gitTreeState=clean",
            f"-X k8s.io/client-go/pkg/version.gitVersion={K8S_VERSION}",
        ]
    )
    _run(["go", "build", "-p", "2", "-trimpath", "-ldflags", ldflags, "-o", "kube", "."], src)
    _install(src / "kube", _bin_dir("kubernetes", K8S_VERSION), ("kube", *KUBE_COMMANDS))


def _binary_recipe(
    component: str, *, version: str, module: str, package: str, binary: str, ldflags: str = "-s -w"
) -> Recipe:
    """A component that is one `package main` of one module, built at `version`."""

    def resolve(root: Path) -> Path:
        src = _tools_module(root, component, f"module kvhatestbed/{component}\n\ngo 1.26.0\n", _tools_import(package))
        _run(["go", "get", f"{module}@{version}"], src)
        _run(["go", "mod", "tidy"], src)
        return src

    def compile_(src: Path) -> None:
        _run(["go", "build", "-p", "2", "-trimpath", "-ldflags", ldflags, "-o", binary, package], src)
        _install(src / binary, _bin_dir(component, version), (binary,))

    return Recipe(
        component=component,
        version=version,
        resolve=resolve,
        compile=compile_,
        built=(_bin_dir(component, version) / binary).exists,
        packages=(package,),
    )


KUBEVIRT_MANIFESTS_MAIN = """// What virt-operator would install, from its own generators, as YAML files.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	extv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/components"
	"kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/rbac"
)

func write(dir, name string, objects []runtime.Object) {
	out := []byte{}
	for _, object := range objects {
		if object.GetObjectKind().GroupVersionKind().Empty() {
			panic(fmt.Sprintf("%s: an object without apiVersion/kind: %T", name, object))
		}
		doc, err := yaml.Marshal(object)
		if err != nil {
			panic(err)
		}
		out = append(append(out, []byte("---\\n")...), doc...)
	}
	if err := os.WriteFile(filepath.Join(dir, name), out, 0o644); err != nil {
		panic(err)
	}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: kubevirt-manifests <install namespace> <output dir>")
		os.Exit(2)
	}
	namespace, dir := os.Args[1], os.Args[2]
	// The CRDs virt-operator's install strategy creates, plus the KubeVirt CR's own.
	generators := []func() (*extv1.CustomResourceDefinition, error){
		components.NewKubeVirtCrd,
		components.NewVirtualMachineInstanceCrd, components.NewPresetCrd, components.NewReplicaSetCrd,
		components.NewVirtualMachineCrd, components.NewVirtualMachineInstanceMigrationCrd,
		components.NewVirtualMachineSnapshotCrd, components.NewVirtualMachineSnapshotContentCrd,
		components.NewVirtualMachineRestoreCrd, components.NewVirtualMachineInstancetypeCrd,
		components.NewVirtualMachineClusterInstancetypeCrd, components.NewVirtualMachinePoolCrd,
		components.NewMigrationPolicyCrd, components.NewVirtualMachinePreferenceCrd,
		components.NewVirtualMachineClusterPreferenceCrd, components.NewVirtualMachineExportCrd,
		components.NewVirtualMachineCloneCrd,
	}
	crds := []runtime.Object{}
	for _, generate := range generators {
		crd, err := generate()
		if err != nil {
			panic(err)
		}
		crds = append(crds, crd)
	}
	write(dir, "crds.yaml", crds)

	roles := rbac.GetAllCluster()
	roles = append(roles, rbac.GetAllApiServer(namespace)...)
	roles = append(roles, rbac.GetAllController(namespace)...)
	roles = append(roles, rbac.GetAllHandler(namespace)...)
	write(dir, "rbac.yaml", roles)

	// Service references: the testbed rewrites them to virt-api's local URL and CA.
	write(dir, "webhooks.yaml", []runtime.Object{
		components.NewVirtAPIMutatingWebhookConfiguration(namespace),
		components.NewVirtAPIValidatingWebhookConfiguration(namespace),
	})
	handler := fmt.Sprintf("system:serviceaccount:%s:%s", namespace, components.HandlerServiceAccountName)
	write(dir, "admission-policies.yaml", []runtime.Object{
		components.NewHandlerV1ValidatingAdmissionPolicy(handler),
		components.NewHandlerV1ValidatingAdmissionPolicyBinding(),
	})
}
"""

_KUBEVIRT_MANIFESTS_PACKAGE = "./kubevirt-manifests"
_KUBEVIRT_PACKAGES = tuple(f"kubevirt.io/kubevirt/cmd/{command}" for command in KUBEVIRT_COMMANDS)
_GO_MOD_REPLACE = re.compile(r"^(?:replace\s+)?([\w./~-]+(?:\s+v\S+)?)\s+=>\s+(\S+)(?:\s+(v\S+))?$")


def replaces_of(go_mod: str) -> list[str]:
    """The replace directives of a go.mod that a consuming module can copy, one `old => new version` each.

    A module's replace lines only apply when it is the main module, so a wrapper must repeat them
    (KubeVirt pins k8s.io to an older minor than its requirements would select).  Replacements by a
    local path (KubeVirt's own `./staging` modules) name directories inside KubeVirt's repository:
    those are dropped and the wrapper requires the published modules instead.
    """
    lines: list[str] = []
    in_block = False
    for raw in go_mod.splitlines():
        line = raw.split("//", 1)[0].strip()
        if in_block and line == ")":
            in_block = False
            continue
        if line == "replace (":
            in_block = True
            continue
        if not (in_block or line.startswith("replace ")) or "=>" not in line:
            continue
        match = _GO_MOD_REPLACE.match(line)
        if match is None:
            raise ValueError(f"unparseable replace line in go.mod: {raw!r}")
        old, new, version = match.groups()
        if version is None:  # a directory, not a module at a version
            continue
        lines.append(f"{old} => {new} {version}")
    return lines


def _resolve_kubevirt(root: Path) -> Path:
    upstream_mod = _fetch_text(f"{GO_PROXY}/kubevirt.io/kubevirt/@v/{KUBEVIRT_VERSION}.mod")
    replaces = "\n".join(f"\t{line}" for line in replaces_of(upstream_mod))
    go_mod = (
        "module kvhatestbed/kubevirt\n\ngo 1.26.0\n\nrequire (\n"
        f"\tkubevirt.io/kubevirt {KUBEVIRT_VERSION}\n"
        f"\tkubevirt.io/api {KUBEVIRT_VERSION}\n"
        f"\tkubevirt.io/client-go {KUBEVIRT_VERSION}\n)\n\n"
        f"replace (\n{replaces}\n)\n"
    )
    files = {**_tools_import(*_KUBEVIRT_PACKAGES), "kubevirt-manifests/main.go": KUBEVIRT_MANIFESTS_MAIN}
    src = _tools_module(root, "kubevirt", go_mod, files)
    _run(["go", "mod", "tidy"], src)
    return src


def _compile_kubevirt(src: Path) -> None:
    """virt-controller and virt-api, then the manifests virt-operator would have installed."""
    jobs = os.environ.get("KVHA_TESTBED_GO_JOBS", "2")
    ldflags = f"-s -w -X kubevirt.io/client-go/version.gitVersion={KUBEVIRT_VERSION}"
    dest = _bin_dir("kubevirt", KUBEVIRT_VERSION)
    staging = dest.with_suffix(".partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "manifests").mkdir(parents=True)
    for command, package in zip(KUBEVIRT_COMMANDS, _KUBEVIRT_PACKAGES, strict=True):
        _run(["go", "build", "-p", jobs, "-trimpath", "-ldflags", ldflags, "-o", str(staging / command), package], src)
    generator = src / "kubevirt-manifests-bin"
    _run(["go", "build", "-p", jobs, "-trimpath", "-o", str(generator), _KUBEVIRT_MANIFESTS_PACKAGE], src)
    _run([str(generator), KUBEVIRT_NAMESPACE, str(staging / "manifests")], src)
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)  # atomic: a half-built cache entry is never visible


def _kubevirt_built() -> bool:
    dest = _bin_dir("kubevirt", KUBEVIRT_VERSION)
    return all((dest / name).exists() for name in (*KUBEVIRT_COMMANDS, "manifests/crds.yaml"))


RECIPES: dict[str, Recipe] = {
    recipe.component: recipe
    for recipe in (
        _binary_recipe(
            "etcd",
            version=ETCD_VERSION,
            module="go.etcd.io/etcd/server/v3",
            package="go.etcd.io/etcd/server/v3",
            binary="etcd",
        ),
        _binary_recipe(
            "kwok",
            version=KWOK_VERSION,
            module="sigs.k8s.io/kwok",
            package="sigs.k8s.io/kwok/cmd/kwok",
            binary="kwok",
            ldflags=f"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={KWOK_VERSION}",
        ),
        _binary_recipe(
            "helm",
            version=HELM_VERSION,
            module="helm.sh/helm/v4",
            package="helm.sh/helm/v4/cmd/helm",
            binary="helm",
            ldflags=f"-s -w -X helm.sh/helm/v4/internal/version.version={HELM_VERSION}",
        ),
        Recipe(
            component="kubevirt",
            version=KUBEVIRT_VERSION,
            resolve=_resolve_kubevirt,
            compile=_compile_kubevirt,
            built=_kubevirt_built,
            packages=(*_KUBEVIRT_PACKAGES, _KUBEVIRT_MANIFESTS_PACKAGE),
        ),
        Recipe(
            component="kubernetes",
            version=K8S_VERSION,
            resolve=_resolve_kubernetes,
            compile=_compile_kubernetes,
            built=(_bin_dir("kubernetes", K8S_VERSION) / "kube-apiserver").exists,
            packages=(".",),
        ),
    )
}


def _require_go() -> None:
    if shutil.which("go") is None:
        raise SystemExit("testbed build needs Go on PATH (or KUBEBUILDER_ASSETS with ready binaries)")


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """One build at a time per cache: parallel test runs on a cold machine would otherwise compile
    the same components side by side and write the same tools modules under each other."""
    cache_root().mkdir(parents=True, exist_ok=True)
    with (cache_root() / "build.lock").open("w") as lock:
        started = time.monotonic()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log("another process is building the testbed; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
            _log(f"waited {time.monotonic() - started:.0f}s for the other build")
        yield


def ensure_built(components: list[str] | None = None) -> Assets:
    assets = resolve_assets()
    if not assets.missing():
        _log("all testbed assets present")
        return assets
    with _build_lock():
        return _build(components)


def _build(components: list[str] | None) -> Assets:
    assets = resolve_assets()  # again: a build this one waited for may have made them
    if not assets.missing():
        return assets
    _require_go()
    started = time.monotonic()
    for name in components or list(RECIPES):
        try:
            RECIPES[name].build()
        except RecipeError as error:
            raise SystemExit(f"testbed build failed: {name} {RECIPES[name].version}: {error}") from None
    _log(f"testbed assets ready in {time.monotonic() - started:.0f}s under {cache_root()}")
    assets = resolve_assets()
    if missing := assets.missing():
        raise SystemExit(f"testbed build finished but these are missing: {missing}")
    return assets


def check_recipes(recipes: list[Recipe]) -> list[str]:
    """Resolve every recipe from an empty cache root; one line per recipe that cannot be had.

    The Go module cache is shared (it only holds what the proxy served), but nothing of the
    testbed's own cache is used: no tools module, go.sum or binary from an earlier run.
    """
    _require_go()
    failures = []
    with tempfile.TemporaryDirectory(prefix="kvha-recipes-") as root:
        for recipe in recipes:
            started = time.monotonic()
            try:
                recipe.check(Path(root))
            except (RecipeError, OSError) as error:
                failures.append(f"{recipe.component} {recipe.version}: {error}")
                _log(f"recipe {recipe.component} {recipe.version}: FAILED")
                continue
            _log(f"recipe {recipe.component} {recipe.version}: resolves ({time.monotonic() - started:.0f}s)")
    return failures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("components", nargs="*", help="default: all")
    parser.add_argument("--print-assets", action="store_true")
    parser.add_argument(
        "--check-recipes",
        action="store_true",
        help="resolve every recipe from an empty cache root against the module proxy; compile nothing",
    )
    args = parser.parse_args(argv)
    if args.check_recipes:
        failures = check_recipes([RECIPES[name] for name in args.components or RECIPES])
        if failures:
            raise SystemExit("testbed recipes that cannot be built from an empty cache:\n" + "\n".join(failures))
        return
    assets = ensure_built(args.components or None)
    if args.print_assets:
        for key, value in assets.__dict__.items():
            print(f"{key}={value}")


if __name__ == "__main__":
    main()
