"""The `agentfleet` command: every process of agentfleet behind one entry point.

The composition root, above every layer: the user commands come from frontends/cli.py,
`run` (the operator) from runtime/, `node-agent` from nodeagent/, `crd` from the API types,
and `dev` (the local control plane) from the dev-only package when it is installed. Only
this module may import all of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from agentfleet.api import crd as crd_module
from agentfleet.api.config import OperatorConfig
from agentfleet.frontends.cli import app
from agentfleet.nodeagent.cli import node_agent
from agentfleet.runtime import command

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


def _start_operator(config: OperatorConfig, verbose: bool) -> None:
    from agentfleet.runtime import runner  # kopf and the controllers: only for `run`

    runner.run(config, verbose)


def _autoscaling_defaults(path: Path) -> dict[str, Any]:
    """`--autoscaling-defaults`, checked before the operator starts (a usage error if bad)."""
    from agentfleet.render import keda

    try:
        return dict(keda.load_defaults(path.read_text()))
    except ValueError as error:  # pydantic's ValidationError is a ValueError too
        raise typer.BadParameter(str(error), param_hint="--autoscaling-defaults") from error


def _traffic_defaults(path: Path) -> dict[str, Any]:
    """`--traffic-defaults`, checked before the operator starts (a usage error if bad)."""
    from agentfleet.render import traffic

    try:
        return dict(traffic.load_defaults(path.read_text()))
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--traffic-defaults") from error


app.command("run")(
    command.command(
        _start_operator,
        {"autoscaling_defaults": _autoscaling_defaults, "traffic_defaults": _traffic_defaults},
    )
)
app.command("node-agent")(node_agent)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
