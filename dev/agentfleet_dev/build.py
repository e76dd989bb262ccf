"""Build the real control-plane binaries once, from the Go module proxy, and cache them.

There is no Docker engine to run kind here, so the local cluster is made of the
real upstream programs built from their published Go modules. Each component is
cached in its own `<name>-<version>` directory; a directory only appears once
its build finished (built in a scratch directory, then renamed), so an
interrupted build is simply redone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from agentfleet_dev import versions

Log = Callable[[str], None]


class BuildError(RuntimeError):
    """A component could not be built; the message carries the tail of the tool's output."""


def cache_root() -> Path:
    if explicit := os.environ.get("AGENTFLEET_CACHE"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "agentfleet"


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    outputs: tuple[str, ...]
    builder: Callable[[Component, Path], None]

    @property
    def dir(self) -> Path:
        return cache_root() / f"{self.name}-{self.version}"

    def is_built(self) -> bool:
        return all((self.dir / output).exists() for output in self.outputs)


# --- go helpers ---------------------------------------------------------------------------


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, "CGO_ENABLED": "0", **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise BuildError(f"`{' '.join(cmd)}` failed in {cwd} (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def go_module(path_at_version: str) -> dict[str, str]:
    """Download one module (not its dependencies) and return `go mod download -json`."""
    scratch = cache_root() / ".scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    info: dict[str, str] = json.loads(
        _run(["go", "mod", "download", "-json", path_at_version], scratch)
    )
    if info.get("Error"):
        raise BuildError(f"go mod download {path_at_version}: {info['Error']}")
    return info


def _ldflags(*extra: str) -> str:
    return " ".join(["-s", "-w", *extra])


def _wrapper_module(
    src: Path,
    requires: dict[str, str],
    imports: list[str],
    replaces: dict[str, str] | None = None,
    go: str = "1.25.0",
) -> None:
    """A throwaway module that depends on `requires`; `tools.go` pins the commands we build."""
    src.mkdir(parents=True)
    lines = ["module agentfleet.local/devtools", "", f"go {go}", ""]
    lines += [f"require {mod} {ver}" for mod, ver in requires.items()]
    if replaces:
        lines += ["", "replace ("]
        lines += [f"\t{mod} => {target}" for mod, target in sorted(replaces.items())]
        lines += [")"]
    (src / "go.mod").write_text("\n".join(lines) + "\n")
    body = "\n".join(f'\t_ "{imp}"' for imp in imports)
    (src / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{body}\n)\n")
    _run(["go", "mod", "tidy"], src)


# --- builders -----------------------------------------------------------------------------

KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


def _build_kubernetes(c: Component, out: Path) -> None:
    """k8s.io/kubernetes replaces its staging modules with ./staging paths, so `go install`
    refuses it; a wrapper module replaces each with the published v0.<minor>.<patch>."""
    info = go_module(f"k8s.io/kubernetes@{c.version}")
    upstream_gomod = Path(info["GoMod"]).read_text()
    staging = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", upstream_gomod, re.M)
    if not staging:
        raise BuildError(f"no staging replaces found in k8s.io/kubernetes@{c.version} go.mod")
    go_line = re.search(r"^go (\S+)", upstream_gomod, re.M)
    published = "v0." + c.version.removeprefix("v1.")
    packages = [f"k8s.io/kubernetes/cmd/{cmd}" for cmd in KUBE_COMMANDS]
    src = out / "src"
    _wrapper_module(
        src,
        requires={"k8s.io/kubernetes": c.version},
        imports=packages,
        replaces={mod: f"{mod} {published}" for mod in staging},
        go=go_line.group(1) if go_line else "1.25.0",
    )
    major, minor = c.version.removeprefix("v").split(".")[:2]
    ldflags = _ldflags(
        f"-X k8s.io/component-base/version.gitVersion={c.version}",
        f"-X k8s.io/component-base/version.gitMajor={major}",
        f"-X k8s.io/component-base/version.gitMinor={minor}",
        "-X k8s.io/component-base/version.gitTreeState=clean",
        f"-X k8s.io/client-go/pkg/version.gitVersion={c.version}",
        f"-X k8s.io/client-go/pkg/version.gitMajor={major}",
        f"-X k8s.io/client-go/pkg/version.gitMinor={minor}",
    )
    _run(
        ["go", "build", "-trimpath", f"-ldflags={ldflags}", "-o", f"{out / 'bin'}/", *packages], src
    )
    shutil.rmtree(src)


def _build_etcd(c: Component, out: Path) -> None:
    src = out / "src"
    _wrapper_module(
        src,
        requires={"go.etcd.io/etcd/server/v3": c.version},
        imports=["go.etcd.io/etcd/server/v3"],
        go="1.24",
    )
    _run(
        [
            "go",
            "build",
            "-trimpath",
            f"-ldflags={_ldflags()}",
            "-o",
            str(out / "bin" / "etcd"),
            "go.etcd.io/etcd/server/v3",
        ],
        src,
    )
    shutil.rmtree(src)


KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "node/chaos/node-not-ready.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)


def _build_kwok(c: Component, out: Path) -> None:
    _run(
        [
            "go",
            "install",
            "-trimpath",
            f"-ldflags={_ldflags()}",
            f"sigs.k8s.io/kwok/cmd/kwok@{c.version}",
        ],
        out,
        env={"GOBIN": str(out / "bin")},
    )
    module_dir = Path(go_module(f"sigs.k8s.io/kwok@{c.version}")["Dir"])
    for stage in KWOK_STAGES:
        target = out / "stages" / stage
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(module_dir / "kustomize" / "stage" / stage, target)


def _build_helm(c: Component, out: Path) -> None:
    ldflags = _ldflags(f"-X helm.sh/helm/v3/internal/version.version={c.version}")
    _run(
        [
            "go",
            "install",
            "-trimpath",
            f"-ldflags={ldflags}",
            f"helm.sh/helm/v3/cmd/helm@{c.version}",
        ],
        out,
        env={"GOBIN": str(out / "bin")},
    )


def _replace_directives(gomod: str) -> dict[str, str]:
    """Every `replace` of a go.mod (block and single-line forms), as {left side: right side}."""
    replaces: dict[str, str] = {}
    blocks = re.findall(r"^replace \((.*?)^\)", gomod, re.M | re.S)
    lines = [line for block in blocks for line in block.splitlines()]
    lines += re.findall(r"^replace ([^(].*)$", gomod, re.M)
    for line in lines:
        directive = line.split("//", 1)[0].strip()
        if "=>" in directive:
            left, right = (part.strip() for part in directive.split("=>", 1))
            replaces[left] = right
    return replaces


def _build_keda(c: Component, out: Path) -> None:
    """KEDA pins k8s.io/*, controller-runtime's peers and prometheus with its own `replace`
    block; a module that depends on KEDA must repeat it or `go mod tidy` picks newer ones."""
    info = go_module(f"github.com/kedacore/keda/v2@{c.version}")
    upstream_gomod = Path(info["GoMod"]).read_text()
    replaces = _replace_directives(upstream_gomod)
    if not replaces:
        raise BuildError(f"no replace directives found in keda {c.version} go.mod")
    go_line = re.search(r"^go (\S+)", upstream_gomod, re.M)
    package = "github.com/kedacore/keda/v2/cmd/operator"
    src = out / "src"
    _wrapper_module(
        src,
        requires={"github.com/kedacore/keda/v2": c.version},
        imports=[package],
        replaces=replaces,
        go=go_line.group(1) if go_line else "1.24",
    )
    ldflags = _ldflags(f"-X github.com/kedacore/keda/v2/version.Version={c.version}")
    _run(
        [
            "go",
            "build",
            "-trimpath",
            f"-ldflags={ldflags}",
            "-o",
            str(out / "bin" / "keda"),
            package,
        ],
        src,
    )
    shutil.rmtree(src)


def _build_with_upstream_gomod(
    module: str, version: str, package: str, binary: Path, ldflags: str
) -> None:
    """Build `package` of `module@version` in a wrapper module that carries the upstream's own
    go.mod (requirements and replaces) and go.sum: `go install` would check every dependency
    against the checksum database, which (as reached from here) does not know some of istio's
    pseudo-version dependencies, and refuses a module with replace directives (jaeger's).
    Every dependency is verified against the hash upstream recorded (and the module itself
    against the checksum database, by `go mod download`)."""
    info = go_module(f"{module}@{version}")
    upstream_gomod = Path(info["GoMod"]).read_text()
    src = binary.parent.parent / "src"
    src.mkdir(parents=True)
    gomod = re.sub(
        r"^module .*$", "module agentfleet.local/devtools", upstream_gomod, count=1, flags=re.M
    )
    (src / "go.mod").write_text(f"{gomod}\nrequire {module} {version}\n")
    sums = (Path(info["Dir"]) / "go.sum").read_text()
    sums += f"{module} {version} {info['Sum']}\n{module} {version}/go.mod {info['GoModSum']}\n"
    (src / "go.sum").write_text(sums)
    _run(["go", "build", "-trimpath", f"-ldflags={ldflags}", "-o", str(binary), package], src)
    shutil.rmtree(src)


def _build_istioctl(c: Component, out: Path) -> None:
    module = "istio.io/istio"
    revision = c.version.rsplit("-", 1)[-1]
    ldflags = _ldflags(
        f"-X istio.io/istio/pkg/version.buildVersion={c.version}",
        f"-X istio.io/istio/pkg/version.buildGitRevision={revision}",
        "-X istio.io/istio/pkg/version.buildStatus=Clean",
        f"-X istio.io/istio/pkg/version.buildTag={c.version}",
    )
    package = f"{module}/istioctl/cmd/istioctl"
    _build_with_upstream_gomod(module, c.version, package, out / "bin" / "istioctl", ldflags)


def _build_jaeger(c: Component, out: Path) -> None:
    """Jaeger v2 (an OpenTelemetry Collector distribution): the OTLP receiver of the tracing
    tests. Its go.mod replaces one dependency, so it is built the way istioctl is."""
    module = "github.com/jaegertracing/jaeger"
    ldflags = _ldflags(f"-X {module}/internal/version.latestVersion={c.version}")
    package = f"{module}/cmd/jaeger"
    _build_with_upstream_gomod(module, c.version, package, out / "bin" / "jaeger", ldflags)


UPSTREAM_CRD_SOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    # target dir: (module@version, globs inside the module)
    "istio": (
        f"istio.io/api@{versions.ISTIO_API}",
        ("kubernetes/customresourcedefinitions.gen.yaml",),
    ),
    # KEDA's operator exits 2 minutes after start if the eventing.keda.sh CRDs are missing.
    "keda": (
        f"github.com/kedacore/keda/v2@{versions.KEDA}",
        ("config/crd/bases/keda.sh_*.yaml", "config/crd/bases/eventing.keda.sh_*.yaml"),
    ),
    "gateway-api": (
        f"sigs.k8s.io/gateway-api@{versions.GATEWAY_API}",
        ("config/crd/standard/*.yaml",),
    ),
    # What a Helm chart's ServiceMonitor/PodMonitor/PrometheusRule is checked against; the
    # others (Prometheus, Alertmanager, ...: 4 MB of schema) would only slow every start.
    "prometheus-operator": (
        f"github.com/prometheus-operator/prometheus-operator@{versions.PROMETHEUS_OPERATOR}",
        tuple(
            f"example/prometheus-operator-crd/monitoring.coreos.com_{plural}.yaml"
            for plural in ("servicemonitors", "podmonitors", "prometheusrules")
        ),
    ),
    # Multi-Cluster Services: what `spec.multicluster.export` writes (ServiceExport).
    "mcs-api": (f"sigs.k8s.io/mcs-api@{versions.MCS_API}", ("config/crd/*.yaml",)),
}


def _collect_crds(c: Component, out: Path) -> None:
    for target, (module, patterns) in UPSTREAM_CRD_SOURCES.items():
        module_dir = Path(go_module(module)["Dir"])
        for pattern in patterns:
            files = sorted(module_dir.glob(pattern))
            if not files:
                raise BuildError(f"{module} has no files matching {pattern}")
            (out / target).mkdir(parents=True, exist_ok=True)
            for f in files:
                shutil.copyfile(f, out / target / f.name)


KUBERNETES = Component(
    "kubernetes",
    versions.KUBERNETES,
    tuple(f"bin/{cmd}" for cmd in KUBE_COMMANDS),
    _build_kubernetes,
)
ETCD = Component("etcd", versions.ETCD, ("bin/etcd",), _build_etcd)
KWOK = Component(
    "kwok", versions.KWOK, ("bin/kwok", *(f"stages/{s}" for s in KWOK_STAGES)), _build_kwok
)
HELM = Component("helm", versions.HELM, ("bin/helm",), _build_helm)
KEDA = Component("keda", versions.KEDA, ("bin/keda",), _build_keda)
ISTIOCTL = Component("istioctl", versions.ISTIO, ("bin/istioctl",), _build_istioctl)
JAEGER = Component("jaeger", versions.JAEGER, ("bin/jaeger",), _build_jaeger)
UPSTREAM_CRDS = Component(
    "upstream-crds",
    f"istio-{versions.ISTIO_API}_keda-{versions.KEDA}_gateway-api-{versions.GATEWAY_API}"
    f"_prometheus-operator-{versions.PROMETHEUS_OPERATOR}_mcs-api-{versions.MCS_API}",
    tuple(UPSTREAM_CRD_SOURCES),
    _collect_crds,
)
ALL = (ETCD, KUBERNETES, KWOK, HELM, KEDA, ISTIOCTL, JAEGER, UPSTREAM_CRDS)


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """Two processes (a test run and `make demo`) must not build the same thing at once."""
    cache_root().mkdir(parents=True, exist_ok=True)
    with open(cache_root() / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure(component: Component, log: Log = print) -> Path:
    """Return the component's cache directory, building it first if needed."""
    if component.is_built():
        return component.dir
    with _locked(component.name):
        if component.is_built():
            return component.dir
        log(f"building {component.name} {component.version} (cached in {component.dir}) ...")
        partial = component.dir.with_name(component.dir.name + f".partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        started = time.monotonic()
        try:
            component.builder(component, partial)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        seconds = round(time.monotonic() - started, 1)
        record = {
            "component": component.name,
            "version": component.version,
            "build_seconds": seconds,
            "cpus": os.cpu_count(),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (partial / "build.json").write_text(json.dumps(record, indent=2) + "\n")
        shutil.rmtree(component.dir, ignore_errors=True)
        partial.rename(component.dir)
        log(f"built {component.name} {component.version} in {seconds} s")
    return component.dir


@dataclass(frozen=True)
class Toolchain:
    """Where every program and upstream CRD file of the local cluster lives."""

    bin: dict[str, Path]
    kwok_stages: list[Path]
    upstream_crds: Path


def _from_kubebuilder_assets(name: str) -> Path | None:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and (Path(assets) / name).is_file():
        return Path(assets) / name
    return None


def toolchain(log: Log = print) -> Toolchain:
    """Build or reuse every component. Binaries found in $KUBEBUILDER_ASSETS win (envtest
    ships etcd, kube-apiserver and kubectl; the rest is still built)."""
    wanted = {
        "etcd": ETCD,
        **dict.fromkeys(KUBE_COMMANDS, KUBERNETES),
        "kwok": KWOK,
        "helm": HELM,
        "keda": KEDA,
        "istioctl": ISTIOCTL,
        "jaeger": JAEGER,
    }
    binaries: dict[str, Path] = {}
    for name, component in wanted.items():
        binaries[name] = _from_kubebuilder_assets(name) or ensure(component, log) / "bin" / name
    kwok_dir = ensure(KWOK, log)
    return Toolchain(
        bin=binaries,
        kwok_stages=[kwok_dir / "stages" / s for s in KWOK_STAGES if "chaos" not in s],
        upstream_crds=ensure(UPSTREAM_CRDS, log),
    )


def build_report() -> list[dict[str, object]]:
    """What is cached: versions, cold build times recorded at build, disk used."""
    rows: list[dict[str, object]] = []
    for component in ALL:
        record: dict[str, object] = {"component": component.name, "version": component.version}
        if component.is_built():
            built = json.loads((component.dir / "build.json").read_text())
            size = sum(f.stat().st_size for f in component.dir.rglob("*") if f.is_file())
            record.update(build_seconds=built["build_seconds"], megabytes=round(size / 2**20))
        rows.append(record)
    return rows
