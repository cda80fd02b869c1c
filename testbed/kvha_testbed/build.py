"""Build the testbed's binaries from Go modules and cache them by version.

There is no Docker engine and no way to download release binaries here, so the real control plane
(etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl), kwok and helm are compiled
with the machine's Go from the module proxy.  Each component gets its own throw-away "tools" module
because their dependency graphs disagree (Go picks one version per module).  Results live under the
user cache directory keyed by version, so a second run takes seconds.

The Kubernetes binaries are linked as one multi-call executable: linking is the slow and
memory-hungry step (about 2 GiB per link), and the three commands share almost all their code.

The KubeVirt CRDs are generated here too, with controller-gen over KubeVirt's own API types, so the
testbed validates VirtualMachine objects with KubeVirt's real schema rather than one we wrote.

Standard library only: it runs before the project's virtual environment exists.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

K8S_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.8"
KWOK_VERSION = "v0.8.0"
HELM_VERSION = "v4.2.4"
KUBEVIRT_API_VERSION = "v1.7.1"
CONTROLLER_TOOLS_VERSION = "v0.20.1"

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
    kubevirt_crds: Path

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
        "kubevirt_crds": _bin_dir("kubevirt-crds", KUBEVIRT_API_VERSION),
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


def _run(cmd: list[str], cwd: Path) -> None:
    _log("$ " + " ".join(cmd))
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=_go_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        tail = [*tail, line.rstrip()][-40:]
        if line.startswith("go: downloading"):
            continue  # hundreds of these; the heartbeat below says we are alive
    code = proc.wait()
    _log(f"  done in {time.monotonic() - started:.0f}s (exit {code})")
    if code != 0:
        print("\n".join(tail), file=sys.stderr)
        raise SystemExit(f"testbed build failed: {' '.join(cmd)} (exit {code}) in {cwd}")


def _tools_module(name: str, go_mod: str, main_go: str | None = None) -> Path:
    src = cache_root() / "src" / name
    src.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text(go_mod)
    if main_go is not None:
        (src / "main.go").write_text(main_go)
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


def build_kubernetes() -> None:
    dest = _bin_dir("kubernetes", K8S_VERSION)
    if (dest / "kube-apiserver").exists():
        _log(f"kubernetes {K8S_VERSION}: cached")
        return
    upstream_mod = _fetch_text(f"{GO_PROXY}/k8s.io/kubernetes/@v/{K8S_VERSION}.mod")
    staging_modules = staging_modules_of(upstream_mod)
    staging_version = "v0." + K8S_VERSION.removeprefix("v1.")
    replaces = "\n".join(f"\t{m} => {m} {staging_version}" for m in staging_modules)
    go_mod = (
        f"module kvhatestbed/kubernetes\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes {K8S_VERSION}\n\n"
        f"replace (\n{replaces}\n)\n"
    )
    src = _tools_module("kubernetes", go_mod, KUBE_MAIN)
    _log(f"kubernetes {K8S_VERSION}: resolving {len(staging_modules)} staging modules (first run downloads ~1 GiB)")
    _run(["go", "mod", "tidy"], src)
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
    _log("kubernetes: compiling (tens of minutes on 2 cores the first time)")
    _run(["go", "build", "-p", "2", "-trimpath", "-ldflags", ldflags, "-o", "kube", "."], src)
    _install(src / "kube", dest, ("kube", *KUBE_COMMANDS))


def _build_simple(
    component: str, *, version: str, module: str, package: str, binary: str, ldflags: str = "-s -w"
) -> None:
    dest = _bin_dir(component, version)
    if (dest / binary).exists():
        _log(f"{component} {version}: cached")
        return
    src = _tools_module(component, f"module kvhatestbed/{component}\n\ngo 1.26.0\n")
    (src / "tools.go").write_text(f'//go:build tools\n\npackage tools\n\nimport _ "{package}"\n')
    _log(f"{component} {version}: fetching module")
    _run(["go", "get", f"{module}@{version}"], src)
    _run(["go", "mod", "tidy"], src)
    _log(f"{component} {version}: compiling")
    _run(["go", "build", "-p", "2", "-trimpath", "-ldflags", ldflags, "-o", binary, package], src)
    _install(src / binary, dest, (binary,))


def build_etcd() -> None:
    _build_simple(
        "etcd",
        version=ETCD_VERSION,
        module="go.etcd.io/etcd/server/v3",
        package="go.etcd.io/etcd/server/v3",
        binary="etcd",
    )


def build_kwok() -> None:
    _build_simple(
        "kwok",
        version=KWOK_VERSION,
        module="sigs.k8s.io/kwok",
        package="sigs.k8s.io/kwok/cmd/kwok",
        binary="kwok",
        ldflags=f"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={KWOK_VERSION}",
    )


def build_helm() -> None:
    _build_simple(
        "helm",
        version=HELM_VERSION,
        module="helm.sh/helm/v4",
        package="helm.sh/helm/v4/cmd/helm",
        binary="helm",
        ldflags=f"-s -w -X helm.sh/helm/v4/internal/version.version={HELM_VERSION}",
    )


def build_kubevirt_crds() -> None:
    """Generate KubeVirt's CRDs with controller-gen over kubevirt.io/api's core/v1 types."""
    dest = _bin_dir("kubevirt-crds", KUBEVIRT_API_VERSION)
    if dest.exists() and any(dest.glob("*.yaml")):
        _log(f"kubevirt CRDs {KUBEVIRT_API_VERSION}: cached")
        return
    src = _tools_module("kubevirt-crds", "module kvhatestbed/kubevirtcrds\n\ngo 1.26.0\n")
    (src / "tools.go").write_text(
        "//go:build tools\n\npackage tools\n\nimport (\n"
        '\t_ "kubevirt.io/api/core/v1"\n\t_ "sigs.k8s.io/controller-tools/cmd/controller-gen"\n)\n'
    )
    _run(
        [
            "go",
            "get",
            f"kubevirt.io/api@{KUBEVIRT_API_VERSION}",
            f"sigs.k8s.io/controller-tools@{CONTROLLER_TOOLS_VERSION}",
        ],
        src,
    )
    _run(["go", "mod", "tidy"], src)
    _run(["go", "build", "-trimpath", "-o", "controller-gen", "sigs.k8s.io/controller-tools/cmd/controller-gen"], src)
    out = src / "out"
    shutil.rmtree(out, ignore_errors=True)
    _run(
        [
            "./controller-gen",
            "crd:allowDangerousTypes=true,crdVersions=v1",
            "paths=kubevirt.io/api/core/v1",
            f"output:crd:dir={out}",
        ],
        src,
    )
    staging = dest.with_suffix(".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(out, staging)
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)


BUILDERS = {
    "etcd": build_etcd,
    "kwok": build_kwok,
    "helm": build_helm,
    "kubevirt-crds": build_kubevirt_crds,
    "kubernetes": build_kubernetes,
}


def ensure_built(components: list[str] | None = None) -> Assets:
    assets = resolve_assets()
    if not assets.missing():
        _log("all testbed assets present")
        return assets
    if shutil.which("go") is None:
        raise SystemExit("testbed build needs Go on PATH (or KUBEBUILDER_ASSETS with ready binaries)")
    started = time.monotonic()
    for name in components or list(BUILDERS):
        BUILDERS[name]()
    _log(f"testbed assets ready in {time.monotonic() - started:.0f}s under {cache_root()}")
    assets = resolve_assets()
    if missing := assets.missing():
        raise SystemExit(f"testbed build finished but these are missing: {missing}")
    return assets


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("components", nargs="*", help="default: all")
    parser.add_argument("--print-assets", action="store_true")
    args = parser.parse_args(argv)
    assets = ensure_built(args.components or None)
    if args.print_assets:
        for key, value in assets.__dict__.items():
            print(f"{key}={value}")


if __name__ == "__main__":
    main()
