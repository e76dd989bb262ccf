"""kopf glue of GPU placement: Pods of GPU agents, Nodes and node-agent Leases feed the
placer (placer.py). Registered only when placement is on (`agentfleet run --placement`).

The books must be complete before the first decision, or a restart could hand out a GPU
twice: so every Pod, Node and Lease reaches the placer through an index function, and kopf
calls no event handler (the ones that trigger decisions) before every index is filled.
"""

from __future__ import annotations

from typing import Any

import kopf

from agentfleet.api import constants as c
from agentfleet.controllers.placer import Placer
from agentfleet.kube.client import LEASES
from agentfleet.placement import labels as k

POD_SELECTOR = f"{c.LABEL_GPU}=true"
LEASE_SELECTOR = f"{c.LABEL_MANAGED_BY}={k.NODE_AGENT_MANAGER}"


def configure(settings: kopf.OperatorSettings) -> None:
    settings.watching.label_selectors["v1", "pods"] = POD_SELECTOR
    settings.watching.label_selectors[LEASES.api_version, LEASES.plural] = LEASE_SELECTOR


@kopf.index("v1", "pods")
async def gpu_pod_index(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    placer: Placer = memo["placer"]
    placer.pod_seen(dict(body))


@kopf.on.event("v1", "pods")
async def gpu_pod_changed(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    placer: Placer = memo["placer"]
    if type == "DELETED":
        placer.pod_gone(dict(body))
    else:
        placer.wake(dict(body))


@kopf.index("v1", "nodes")
async def node_index(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    placer: Placer = memo["placer"]
    placer.node_seen(dict(body))


@kopf.on.event("v1", "nodes")
async def node_changed(type: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    if type == "DELETED":
        placer: Placer = memo["placer"]
        placer.node_gone(name)


@kopf.index(LEASES.api_version, LEASES.plural)
async def lease_index(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    placer: Placer = memo["placer"]
    placer.lease_seen(dict(body))


@kopf.on.event(LEASES.api_version, LEASES.plural)
async def lease_changed(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if type == "DELETED":
        placer: Placer = memo["placer"]
        placer.lease_gone(dict(body))
