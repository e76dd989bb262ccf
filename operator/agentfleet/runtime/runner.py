"""Start the operator process: logging, kopf, and the configuration from the command line."""

from __future__ import annotations

import logging
import sys

import kopf

from agentfleet.api.config import OperatorConfig


def run(config: OperatorConfig, verbose: bool = False) -> None:
    from agentfleet.runtime.handlers import Exit

    if config.render.gpu_placement:
        import agentfleet.runtime.placement_handlers  # noqa: F401  (Pods, Nodes, Leases)

    kopf.configure(verbose=verbose)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("kubernetes_asyncio").setLevel(logging.INFO)  # DEBUG dumps every body
    if not verbose:  # one "Handler succeeded" line per watch event is noise at fleet scale
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    exit_ = Exit()
    kopf.run(
        # No KopfPeering: kopf's peering pauses whole operators by priority; one writer among
        # replicas is our leader Lease's job (leader.py, --leader-elect).
        standalone=True,
        clusterwide=not config.namespaces,
        namespaces=list(config.namespaces),
        liveness_endpoint=None,  # our own /healthz (health.py) knows about watches and workers
        memo=kopf.Memo(config=config, exit=exit_),
        stop_flag=exit_.flag,
    )
    if exit_.code:
        sys.exit(exit_.code)
