"""The `agentfleet` command: run the operator, print the CRD, drive the local cluster."""

from __future__ import annotations

from pathlib import Path

import typer

from agentfleet import crd as crd_module
from agentfleet.controller import OperatorConfig

app = typer.Typer(
    help="agentfleet: AI agents as Kubernetes-native AIAgent resources.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

try:  # the dev tools are a separate, dev-only package (never in the operator image)
    from agentfleet_dev.cli import main_app as dev_app
except ImportError:
    pass
else:
    app.add_typer(dev_app, name="dev", help="Developer tools (the local control plane).")


@app.command()
def crd(
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write here instead of stdout."
    ),
) -> None:
    """Print the AIAgent CustomResourceDefinition generated from the models."""
    text = crd_module.render_yaml()
    if output:
        output.write_text(text)
    else:
        typer.echo(text, nl=False)


@app.command()
def run(
    namespace: list[str] = typer.Option(
        [], "--namespace", "-n", help="Serve only these namespaces (default: all)."
    ),
    agent_selector: str = typer.Option(
        "",
        help="Serve only AIAgents with these labels (server-side selector, e.g."
        " agentfleet.io/shard=a): one way to split a fleet across operators.",
    ),
    workers: int = typer.Option(8, min=1, help="Concurrent reconciles."),
    metrics_address: str = typer.Option("0.0.0.0", help="Prometheus metrics bind address."),
    metrics_port: int = typer.Option(8080, help="Prometheus metrics port (0 disables)."),
    health_address: str = typer.Option("0.0.0.0", help="/healthz and /readyz bind address."),
    health_port: int = typer.Option(8081, help="/healthz and /readyz port (0 disables)."),
    cluster_domain: str = typer.Option(
        "cluster.local", help="DNS suffix used in status.endpoints."
    ),
    resync_seconds: float = typer.Option(
        600, help="Reconcile every agent again about this often (jittered; 0 disables)."
    ),
    max_retry_seconds: float = typer.Option(30, help="Cap of the per-agent retry backoff."),
    qps: float = typer.Option(50, help="Client-side rate limit of API requests per second."),
    burst: int = typer.Option(100, help="Requests allowed at once above --qps."),
    request_timeout: float = typer.Option(30, help="Total timeout of one API request (s)."),
    connect_timeout: float = typer.Option(10, help="Connect timeout of API requests (s)."),
    watch_server_timeout: int = typer.Option(300, help="The server ends each watch after (s)."),
    watch_inactivity_seconds: float = typer.Option(
        70, help="Reconnect a watch silent for this long (no event or bookmark)."
    ),
    unhealthy_after_seconds: float = typer.Option(
        300, help="/healthz fails when a watch or the work queue is stuck this long."
    ),
    allow_host_path: bool = typer.Option(False, help="Let agents mount hostPath volumes."),
    allow_privileged: bool = typer.Option(
        False, help="Let agents ask for privileged / root / added-capability security contexts."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run the operator (in a Pod, or locally against $KUBECONFIG)."""
    from agentfleet import runner
    from agentfleet.config import Policy, RenderConfig

    config = OperatorConfig(
        render=RenderConfig(cluster_domain=cluster_domain),
        policy=Policy(allow_host_path=allow_host_path, allow_privileged=allow_privileged),
        namespaces=tuple(namespace),
        agent_selector=agent_selector,
        workers=workers,
        metrics_address=metrics_address,
        metrics_port=metrics_port,
        health_address=health_address,
        health_port=health_port,
        resync_seconds=resync_seconds,
        max_retry_seconds=max_retry_seconds,
        qps=qps,
        burst=burst,
        request_timeout=request_timeout,
        connect_timeout=connect_timeout,
        watch_server_timeout=watch_server_timeout,
        watch_inactivity_seconds=watch_inactivity_seconds,
        unhealthy_after_seconds=unhealthy_after_seconds,
    )
    runner.run(config, verbose)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
