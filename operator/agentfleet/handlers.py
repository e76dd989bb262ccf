"""kopf glue: watch AIAgents and their children, keep caches, feed keys to the controller.

Only `@kopf.index` and `@kopf.on.event` handlers are used on purpose: with them kopf writes
nothing to the objects (no finalizers, no last-handled-configuration annotations, no
progress in status), so an idle fleet costs zero API writes and deletes never wait on us.
Every handler is `async`: kopf runs sync handlers in worker threads, and the work queue is an
asyncio object that must only be touched from the event loop.

What is watched comes from the table of child kinds (children.py). Children are filtered by
our `managed-by` label on the server, so only our objects cross the wire, and each is kept
as a small record (cache.py), not a whole object.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import kopf
import prometheus_client
from pydantic import ValidationError

from agentfleet import constants as c
from agentfleet import kube, metrics, sharding, watchhealth
from agentfleet.cache import (
    AgentRecord,
    ChildRecord,
    Key,
    agent_owner_keys,
    controller_key,
    depends_on_peers,
    peer_of,
)
from agentfleet.children import CHILD_KINDS, ChildKind
from agentfleet.config import OperatorConfig
from agentfleet.controller import Controller
from agentfleet.health import Health
from agentfleet.models import AIAgent
from agentfleet.placer import Placer
from agentfleet.reconciler import Reconciler
from agentfleet.render.context import Peer

OURS = f"{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"
CRD_GROUP, CRD_VERSION, CRD_PLURAL = "apiextensions.k8s.io", "v1", "customresourcedefinitions"
OPTIONAL_RESOURCES = {row.resource: row for row in CHILD_KINDS if row.optional}


def _index_id(row: ChildKind) -> str:
    return f"{row.kind.lower()}_index"


@kopf.index(c.GROUP, c.VERSION, c.PLURAL)
async def agent_index(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[Key, AgentRecord]:
    return {(namespace or "", name): AgentRecord.of(dict(body))}


@kopf.index(c.GROUP, c.VERSION, c.PLURAL)
async def peer_index(namespace: str | None, body: kopf.Body, **_: Any) -> dict[str, Peer]:
    """Namespace -> the agents in it, as other agents' objects may name them."""
    return {namespace or "": peer_of(dict(body))}


async def _child_index(body: kopf.Body, **_: Any) -> dict[Key, ChildRecord] | None:
    raw = dict(body)
    key = controller_key(raw)
    return {key: ChildRecord.of(raw)} if key else None


async def _shared_child_index(body: kopf.Body, **_: Any) -> dict[Key, ChildRecord] | None:
    """A shared object (one ownerReference per agent using it) is every owner's child."""
    raw = dict(body)
    record = ChildRecord.of(raw)
    return {key: record for key in agent_owner_keys(raw)} or None


# One index per child kind, each named (and so passed to handlers) as `<kind>_index`.
for _row in CHILD_KINDS:
    _indexer = _shared_child_index if _row.shared else _child_index
    kopf.index(_row.api_version, _row.plural, id=_index_id(_row))(_indexer)


@kopf.index("v1", "namespaces")
async def namespace_index(name: str, body: kopf.Body, **_: Any) -> dict[str, bool]:
    """Namespace name -> is it being deleted."""
    return {name: bool(body["metadata"].get("deletionTimestamp"))}


@kopf.index(CRD_GROUP, CRD_VERSION, CRD_PLURAL)
async def crd_index(name: str, body: kopf.Body, **_: Any) -> dict[str, tuple[str, ...]] | None:
    """Resource (plural.group) of an optional child kind -> its served versions, once the
    CRD is Established. Other CRDs are not kept."""
    if name not in OPTIONAL_RESOURCES:
        return None
    return {name: _served_versions(body)}


def _served_versions(body: kopf.Body) -> tuple[str, ...]:
    conditions = (body.get("status") or {}).get("conditions") or []
    established = any(
        cond.get("type") == "Established" and cond.get("status") == "True" for cond in conditions
    )
    if not established or body["metadata"].get("deletionTimestamp"):
        return ()
    return tuple(v["name"] for v in body["spec"].get("versions") or [] if v.get("served"))


class IndexCache:
    """The reconciler's read-only view over kopf's in-memory indices."""

    def __init__(
        self,
        agents: kopf.Index[Key, AgentRecord],
        children: dict[str, kopf.Index[Key, ChildRecord]],
        namespaces: kopf.Index[str, bool],
        crds: kopf.Index[str, tuple[str, ...]],
        peers: kopf.Index[str, Peer],
    ) -> None:
        self.agents = agents
        self.children_by_kind = children
        self.namespaces = namespaces
        self.crds = crds
        self.peers_by_namespace = peers

    def agent(self, key: Key) -> AgentRecord | None:
        return next(iter(self.agents.get(key, [])), None)

    def parsed_agent(self, key: Key) -> AIAgent | None:
        record = self.agent(key)
        if record is None or record.deleting:
            return None
        try:
            return AIAgent.from_body(record.body())
        except ValidationError:
            return None

    def children(self, kind: str, key: Key) -> list[ChildRecord]:
        return list(self.children_by_kind[kind].get(key, []))

    def namespace_terminating(self, namespace: str) -> bool:
        return any(self.namespaces.get(namespace, []))

    def served(self, row: ChildKind) -> bool:
        if not row.optional:
            return True
        return any(row.version in versions for versions in self.crds.get(row.resource, []))

    def peers(self, namespace: str) -> tuple[Peer, ...]:
        return tuple(sorted(self.peers_by_namespace.get(namespace, []), key=lambda p: p.name))

    def agent_keys(self) -> list[Key]:
        return list(self.agents)

    def condition_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for key in self.agents:
            for record in self.agents.get(key, []):
                for condition in record.conditions:
                    counts[condition] = counts.get(condition, 0) + 1
        return counts


def configure(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    """kopf's watches: timeouts everywhere, paginated initial lists, server-side filters."""
    # kopf would post every handler log line as a Kubernetes Event: a write per event.
    settings.posting.enabled = False
    settings.networking.request_timeout = config.request_timeout
    settings.networking.connect_timeout = config.connect_timeout
    settings.watching.server_timeout = config.watch_server_timeout
    settings.watching.client_timeout = config.watch_server_timeout + 30
    settings.watching.connect_timeout = config.connect_timeout
    settings.watching.inactivity_timeout = config.watch_inactivity_seconds
    settings.watching.chunk_size = 500  # the initial list comes in pages, not all at once
    for row in CHILD_KINDS:
        settings.watching.label_selectors[row.api_version, row.plural] = OURS
    if config.agent_selector:
        settings.watching.label_selectors[c.GROUP, c.PLURAL] = config.agent_selector
    if config.render.gpu_placement:
        from agentfleet import placement_handlers

        placement_handlers.configure(settings)
    # Back-pressure: at most this many objects are processed at once; the watch stream waits
    # (in the socket, not in memory) when a burst of thousands of events arrives.
    settings.queueing.worker_limit = 1000
    settings.batching.idle_timeout = 1.0


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    """Configure kopf, start metrics, health and the workers. kopf passes each index as a
    keyword argument named after it (agent_index, service_index, ...), empty until listed."""
    config: OperatorConfig = memo.get("config") or OperatorConfig()
    configure(settings, config)
    watchhealth.install()
    api = await kube.connect(pool_size=max(16, config.workers * 2))
    writer = kube.Kube(
        api,
        kube.RateLimiter(config.qps, config.burst),
        config.connect_timeout,
        config.request_timeout,
    )
    children = {row.kind: kwargs[_index_id(row)] for row in CHILD_KINDS}
    cache = IndexCache(
        kwargs["agent_index"],
        children,
        kwargs["namespace_index"],
        kwargs["crd_index"],
        kwargs["peer_index"],
    )
    reconciler = Reconciler(writer, cache, config)
    controller = Controller(reconciler, config)
    if config.render.gpu_placement:
        placer = Placer(writer, cache.parsed_agent, controller.queue.add, config.placement_policy)
        reconciler.placements = placer.state
        memo["placer"] = placer
        placer.start()
    if config.shard_id:
        await claim_shard(writer, config, memo)
    controller.start()
    if config.metrics_port:
        metrics.AGENTS.count = cache.condition_counts
        prometheus_client.start_http_server(config.metrics_port, config.metrics_address)
    if config.health_port:
        health = Health(controller, config.unhealthy_after_seconds)
        memo["health"] = await health.serve(config.health_address, config.health_port)
    memo["api"] = api
    memo["controller"] = controller
    memo["cache"] = cache
    memo["config"] = config
    metrics.MAX_CONCURRENT.labels(metrics.CONTROLLER).set(config.workers)


async def claim_shard(writer: kube.Kube, config: OperatorConfig, memo: kopf.Memo) -> None:
    """Serve nothing unless this operator's share is its own (see sharding.py)."""
    scope = sharding.Scope(config.namespaces, config.agent_selector)
    holder = os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    claim = sharding.ShardClaim(writer, config.shard_id, scope, config.shard_namespace, holder)
    try:
        await claim.acquire()
    except sharding.ShardConflict as conflict:
        message = f"refusing to serve shard {config.shard_id!r}: {conflict}"
        raise kopf.PermanentError(message) from conflict
    memo["claim"] = claim
    memo["renewal"] = asyncio.create_task(claim.renew_forever(), name="shard-lease-renewal")


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    if "renewal" in memo:
        memo["renewal"].cancel()
        await memo["claim"].release()
    if "placer" in memo:
        await memo["placer"].stop()
    await memo["controller"].stop()
    if "health" in memo:
        await memo["health"].cleanup()
    await memo["api"].close()


@kopf.on.event(c.GROUP, c.VERSION, c.PLURAL)
async def agent_changed(
    type: str | None,
    namespace: str | None,
    name: str,
    body: kopf.Body,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Reconcile the agent. When what other agents may name of it changed (it was added or
    deleted, or its type, identity or mesh settings changed), also reconcile the agents of
    its namespace whose objects depend on their peers (mesh policies), and only those: a
    burst of agents without mesh settings costs no fan-out."""
    key = (namespace or "", name)
    controller: Controller = memo["controller"]
    controller.queue.add(key)
    seen: dict[Key, Peer] = memo.setdefault("peers_seen", {})
    peer = None if type == "DELETED" else peer_of(dict(body))
    before = seen.pop(key, None)
    if peer is not None:
        seen[key] = peer
    if type is None or before == peer:
        return  # the initial listing, or nothing others depend on changed
    mesh_mode = memo["config"].render.mesh_mode
    for other in memo["cache"].peers(key[0]):
        if other.name != name and depends_on_peers(other, mesh_mode):
            controller.queue.add((key[0], other.name))


async def _child_changed(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A child changed or vanished: its owner may need a repair or a status update. A shared
    object has no controller, only one AIAgent owner per agent using it: each of them."""
    raw = dict(body)
    key = controller_key(raw)
    controller: Controller = memo["controller"]
    for owner in [key] if key else agent_owner_keys(raw):
        controller.reconciler.observe_child(type, owner, raw)
        controller.queue.add(owner)


for _row in CHILD_KINDS:
    kopf.on.event(_row.api_version, _row.plural, id=f"{_row.kind.lower()}_changed")(_child_changed)


@kopf.on.event(CRD_GROUP, CRD_VERSION, CRD_PLURAL)
async def crd_changed(name: str, memo: kopf.Memo, **_: Any) -> None:
    """An optional feature's CRD appeared or changed: every agent may now converge."""
    if name in OPTIONAL_RESOURCES:
        controller: Controller = memo["controller"]
        for key in memo["cache"].agent_keys():
            controller.queue.add(key)
