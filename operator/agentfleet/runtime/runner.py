"""Start the operator process: logging, tracing, kopf, and the configuration from the command
line."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from agentfleet.api.config import OperatorConfig
from agentfleet.telemetry import logs, tracing


def run(config: OperatorConfig, verbose: bool = False) -> None:
    import agentfleet.runtime.handlers

    if config.render.gpu_placement:
        import agentfleet.runtime.placement_handlers  # noqa: F401  (Pods, Nodes, Leases)

    text = config.log_format == "text"
    # kopf takes a format string too (its type hint says only LogFormat).
    log_format: Any = logs.TEXT_FORMAT if text else kopf.LogFormat.JSON
    kopf.configure(verbose=verbose, log_format=log_format)
    logs.install("debug" if verbose else config.log_level, text)
    if config.tracing_endpoint:  # only then is the OpenTelemetry SDK imported
        tracing.enable(config.tracing_endpoint, config.tracing_sampling_percent)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.INFO)  # the OTLP exporter's requests
    if not verbose:  # one "Handler succeeded" line per watch event is noise at fleet scale
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    try:
        kopf.run(
            standalone=True,  # one active replica (Recreate); leader election comes with HA
            clusterwide=not config.namespaces,
            namespaces=list(config.namespaces),
            liveness_endpoint=None,  # our own /healthz (health.py) knows watches and workers
            memo=kopf.Memo(config=config),
        )
    finally:
        tracing.shutdown()  # the spans still queued go out before the process ends
