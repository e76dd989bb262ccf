"""`agentfleet node-agent`: the command the chart's node-agent DaemonSet starts."""

from __future__ import annotations

import logging

import typer

from agentfleet.api.constants import OPERATOR_NAMESPACE
from agentfleet.nodeagent import publish


def node_agent(
    node_name: str = typer.Option(
        ..., envvar="NODE_NAME", help="The Node this agent runs on (the chart: spec.nodeName)."
    ),
    namespace: str = typer.Option(
        OPERATOR_NAMESPACE,
        envvar="POD_NAMESPACE",
        help="Namespace of the heartbeat Lease (the chart: the node agent's own namespace).",
    ),
    interval: float = typer.Option(
        publish.DEFAULT_INTERVAL, min=1, help="Seconds between heartbeats."
    ),
    lease_seconds: int = typer.Option(
        publish.DEFAULT_LEASE_SECONDS,
        min=5,
        help="Lease duration: placement treats the node as stale this long after a missed renewal.",
    ),
    disk_path: str = typer.Option("/", help="Filesystem whose size is published as disk.gib."),
    health_address: str = typer.Option("0.0.0.0", help="/healthz and /readyz bind address."),
    health_port: int = typer.Option(8081, help="/healthz and /readyz port (0 disables)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    """Run the node agent: publish this node's CPUs, memory, disk and GPUs (NVML) as
    agentfleet.io/ labels and heartbeat through a Lease (the chart's DaemonSet)."""
    if interval >= lease_seconds:
        raise typer.BadParameter("must be shorter than --lease-seconds", param_hint="--interval")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    publish.main(
        node_name,
        interval=interval,
        lease_seconds=lease_seconds,
        namespace=namespace,
        disk_path=disk_path,
        health_address=health_address,
        health_port=health_port,
    )
