"""Start the operator process: logging, kopf, and the configuration from the command line."""

from __future__ import annotations

import logging

import kopf

from agentfleet.api.config import OperatorConfig


def run(config: OperatorConfig, verbose: bool = False) -> None:
    import agentfleet.runtime.handlers

    if config.render.gpu_placement:
        import agentfleet.runtime.placement_handlers  # noqa: F401  (Pods, Nodes, Leases)

    kopf.configure(verbose=verbose)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if not verbose:  # one "Handler succeeded" line per watch event is noise at fleet scale
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kopf.run(
        standalone=True,  # one active replica (Recreate strategy); leader election comes with HA
        clusterwide=not config.namespaces,
        namespaces=list(config.namespaces),
        liveness_endpoint=None,  # our own /healthz (health.py) knows about watches and workers
        memo=kopf.Memo(config=config),
    )
