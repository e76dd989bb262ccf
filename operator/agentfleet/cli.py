"""The `agentfleet` command: run the operator, print the CRD, drive the local cluster."""

from __future__ import annotations

import logging
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
        [], "--namespace", "-n", help="Watch only these namespaces (default: all)."
    ),
    workers: int = typer.Option(4, min=1, help="Concurrent reconciles."),
    metrics_address: str = typer.Option("0.0.0.0", help="Prometheus metrics bind address."),
    metrics_port: int = typer.Option(8080, help="Prometheus metrics port (0 disables)."),
    health_port: int = typer.Option(
        8081, help="Liveness endpoint port, serves /healthz (0 disables)."
    ),
    cluster_domain: str = typer.Option(
        "cluster.local", help="DNS suffix used in status.endpoints."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run the operator (in a Pod, or locally against $KUBECONFIG)."""
    import kopf

    import agentfleet.handlers  # noqa: F401  (registers the handlers)

    kopf.configure(verbose=verbose)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("kubernetes_asyncio").setLevel(logging.INFO)  # DEBUG dumps every body
    if not verbose:  # one "Handler succeeded" line per watch event is noise at fleet scale
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    config = OperatorConfig(
        workers=workers,
        metrics_address=metrics_address,
        metrics_port=metrics_port,
        cluster_domain=cluster_domain,
    )
    kopf.run(
        standalone=True,  # one active replica (Recreate strategy); leader election comes with HA
        clusterwide=not namespace,
        namespaces=namespace,
        liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz" if health_port else None,
        memo=kopf.Memo(config=config),
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
