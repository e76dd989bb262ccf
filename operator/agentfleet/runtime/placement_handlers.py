"""kopf and informer glue of GPU placement: Pods, the ReplicaSets of GPU agents, Nodes and the
node agent's Leases feed the placer (placer.py). Registered only when placement is on
(`agentfleet run --placement`).

The books must be complete before the first decision, or a restart could hand out a GPU
twice, and whether a Pod's decision counts depends on its ReplicaSet, Deployment and agent. So
the placer decides nothing before every source has listed: its own informers (every Pod,
kept only when it holds or may hold GPUs; GPU agents' ReplicaSets; the Leases of the node
agent's namespace), the child informers (Deployments), and kopf's indices (AIAgents, Nodes),
which are filled once kopf calls any event handler: `namespace_seen` says so.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from agentfleet.api import constants as c
from agentfleet.api.config import OperatorConfig
from agentfleet.controllers.placer import Placer, is_relevant
from agentfleet.kube.client import LEASES, Kube
from agentfleet.kube.informer import Informer
from agentfleet.kube.liveness import WatchLiveness
from agentfleet.placement import labels as k

LEASE_SELECTOR = f"{c.LABEL_MANAGED_BY}={k.NODE_AGENT_MANAGER}"
REPLICASET_SELECTOR = f"{c.LABEL_GPU}=true"  # the pod template's labels, copied by Deployments
INDEXED = "placement-indexed"  # memo key: set once kopf's indices are filled


def informers(
    kube: Kube, config: OperatorConfig, placer: Placer, liveness: WatchLiveness
) -> list[Informer]:
    """The watches the placer's books read besides kopf's: Pods cluster-wide (what runs on a
    GPU node is physical truth, whoever made it), ReplicaSets where agents are served, and
    the Leases of the node agent's namespace only."""
    common: dict[str, Any] = {
        "server_timeout": config.watch_server_timeout,
        "inactivity_seconds": config.watch_inactivity_seconds,
        "liveness": liveness,
    }
    return [
        Informer(kube, "v1", "Pod", "pods", "", placer.pod_event, keep=is_relevant, **common),
        Informer(
            kube,
            "apps/v1",
            "ReplicaSet",
            "replicasets",
            REPLICASET_SELECTOR,
            placer.replicaset_event,
            namespaces=config.namespaces,
            **common,
        ),
        Informer(
            kube,
            LEASES.api_version,
            LEASES.kind,
            LEASES.plural,
            LEASE_SELECTOR,
            placer.lease_event,
            namespaces=(config.node_agent_namespace,),
            **common,
        ),
    ]


@kopf.index("v1", "nodes")
async def node_index(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    placer: Placer = memo["placer"]
    placer.node_seen(dict(body))


@kopf.on.event("v1", "nodes")
async def node_changed(type: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    if type == "DELETED":
        placer: Placer = memo["placer"]
        placer.node_gone(name)


@kopf.on.event("v1", "namespaces")
async def namespace_seen(memo: kopf.Memo, **_: Any) -> None:
    """kopf calls no event handler before every index is filled (AIAgents, Nodes): the first
    call says the placer may trust them. Some namespace always exists."""
    indexed: asyncio.Event = memo[INDEXED]
    indexed.set()
