"""`agentfleet-dev cluster up|down|status|env|build|stop|start|pause|resume` (also
`agentfleet dev cluster ...` where this package is installed): the local control plane from a
shell, and faults to inject into it one component at a time.

This package is dev-only: the operator's wheel and image never contain it.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from agentfleet_dev import build
from agentfleet_dev.cluster import COMPONENTS, ClusterError, LocalCluster

app = typer.Typer(
    help="A real local Kubernetes control plane (etcd, apiserver, controllers, kwok; KEDA).",
    no_args_is_help=True,
)
console = Console(stderr=True)

DEFAULT_DIR = Path(os.environ.get("AGENTFLEET_CLUSTER_DIR", "_output/cluster"))
DirOption = typer.Option(
    DEFAULT_DIR, "--dir", help="Where the cluster keeps its data, logs and kubeconfig."
)


def _log(message: str) -> None:
    console.print(f"[dim]agentfleet:[/] {message}")


def _cluster(directory: Path) -> LocalCluster:
    return LocalCluster(directory, _log)


@app.command()
def up(
    directory: Path = DirOption,
    nodes: Path = typer.Option(Path("tests/e2e/nodes"), help="Directory or file of Node YAML."),
    upstream_crds: bool = typer.Option(
        True, help="Install the Istio, KEDA, Gateway API and Prometheus Operator CRDs."
    ),
    keda: bool = typer.Option(
        False, help="Also run KEDA's operator and a fake Prometheus its triggers can query."
    ),
) -> None:
    """Build (once) and start the cluster; print the KUBECONFIG export."""
    files = sorted(nodes.glob("*.yaml")) if nodes.is_dir() else [nodes]
    state = _cluster(directory).up(nodes=files, upstream_crds=upstream_crds, keda=keda)
    typer.echo(f"export KUBECONFIG={state.kubeconfig}")


@app.command()
def down(directory: Path = DirOption) -> None:
    """Stop exactly the processes `up` started and delete the cluster's data."""
    _cluster(directory).down()
    _log("cluster stopped and its data removed")


@app.command()
def env(directory: Path = DirOption) -> None:
    """Print exports for `eval "$(agentfleet dev cluster env)"`: KUBECONFIG, PATH with the
    pinned kubectl, helm and istioctl first (not whatever kubectl the machine has), and with
    KEDA on, the fake Prometheus' URL and the file of values it answers with."""
    state = _cluster(directory).state()
    if not state:
        raise typer.Exit(_fail(f"no cluster in {directory}; run `agentfleet dev cluster up`"))
    typer.echo(f"export KUBECONFIG={state.kubeconfig}")
    if state.prometheus_url:
        typer.echo(f"export AGENTFLEET_PROMETHEUS_URL={state.prometheus_url}")
        typer.echo(f"export AGENTFLEET_PROMETHEUS_VALUES={state.prometheus_values}")
    tools = (build.KUBERNETES, build.HELM, build.ISTIOCTL)
    bins = [str(c.dir / "bin") for c in tools if c.is_built()]
    if bins:
        typer.echo(f'export PATH="{":".join(bins)}:$PATH"')


@app.command()
def status(directory: Path = DirOption) -> None:
    """Show the cluster's processes, ports and start time."""
    state = _cluster(directory).state()
    if not state:
        raise typer.Exit(_fail(f"no cluster in {directory}"))
    table = Table(
        "process",
        "pid",
        "port",
        "running",
        title=f"{state.server} (up in {state.startup_seconds} s)",
    )
    for name, proc in state.processes.items():
        running = "[yellow]paused[/]" if proc.paused() else "yes" if proc.alive() else "[red]no[/]"
        table.add_row(name, str(proc.pid), str(state.ports.get(name, "")), running)
    Console().print(table)


Component = typer.Argument(..., help=f"One of: {', '.join(COMPONENTS)}.")


def _component(name: str) -> str:
    if name not in COMPONENTS:
        raise typer.BadParameter(f"{name!r} is not one of {', '.join(COMPONENTS)}")
    return name


def _act(action: str, directory: Path, name: str, **options: bool) -> None:
    try:
        getattr(_cluster(directory), action)(_component(name), **options)
    except ClusterError as error:
        raise typer.Exit(_fail(str(error))) from None


@app.command()
def stop(
    name: str = Component,
    kill: bool = typer.Option(False, "--kill", help="SIGKILL (a crash) instead of SIGTERM."),
    directory: Path = DirOption,
) -> None:
    """Stop one component; its data, ports and command line are kept for `start`."""
    _act("stop", directory, name, kill=kill)


@app.command()
def start(name: str = Component, directory: Path = DirOption) -> None:
    """Start a stopped component again, exactly as `up` started it; wait until it answers."""
    _act("start", directory, name)


@app.command()
def pause(name: str = Component, directory: Path = DirOption) -> None:
    """Freeze one component (SIGSTOP): connections stay open, nothing answers."""
    _act("pause", directory, name)


@app.command()
def resume(name: str = Component, directory: Path = DirOption) -> None:
    """Thaw a paused component (SIGCONT)."""
    _act("resume", directory, name)


@app.command("build")
def build_cmd() -> None:
    """Build or reuse every pinned binary and upstream CRD set, and report the cache."""
    build.toolchain(_log)
    for judge in build.JUDGES:
        build.ensure(judge, _log)
    table = Table(
        "component", "version", "cold build (s)", "MiB", title=f"cache: {build.cache_root()}"
    )
    for row in build.build_report():
        table.add_row(
            *(str(row.get(k, "")) for k in ("component", "version", "build_seconds", "megabytes"))
        )
    Console().print(table)


def _fail(message: str) -> int:
    console.print(f"[red]error:[/] {message}")
    return 1


main_app = typer.Typer(help="agentfleet developer tools.", no_args_is_help=True)
main_app.add_typer(app, name="cluster")


def main() -> None:
    main_app()
