"""kopf glue: watch AIAgents and their children, keep caches, feed keys to the controller.

Only `@kopf.index` and `@kopf.on.event` handlers are used on purpose: with them kopf writes
nothing to the objects (no finalizers, no last-handled-configuration annotations, no
progress in status), so an idle fleet costs zero API writes and deletes never wait on us.
Every handler is `async`: kopf runs sync handlers in worker threads, and the work queue is an
asyncio object that must only be touched from the event loop.

kopf watches the AIAgents (and namespaces, and the CRDs of optional features). The child
kinds of the table in children.py are watched by informers of our own (informer.py): kopf
would hold every child's body at start-up until all its indices are filled, which at tens of
thousands of children is most of the operator's memory. Children are filtered by our
`managed-by` label on the server and kept as small records (cache.ChildStore); the workers
start once every informer has listed.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from typing import Any

import kopf
import prometheus_client
from pydantic import ValidationError

from agentfleet.api import constants as c
from agentfleet.api.config import OperatorConfig
from agentfleet.api.models import AIAgent
from agentfleet.controllers.cache import (
    AgentRecord,
    ChildRecord,
    ChildStore,
    Key,
    PeerTable,
    peer_of,
)
from agentfleet.controllers.placer import Placer
from agentfleet.controllers.reconciler import Reconciler
from agentfleet.controllers.workers import Controller
from agentfleet.kube import client as kube
from agentfleet.kube.informer import Informer
from agentfleet.kube.liveness import WatchLiveness
from agentfleet.render.children import CHILD_KINDS, ChildKind
from agentfleet.render.context import Peer
from agentfleet.runtime import sharding, watchhealth
from agentfleet.runtime.health import Health
from agentfleet.telemetry import metrics

OURS = f"{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"
OPTIONAL_RESOURCES = {row.resource: row for row in CHILD_KINDS if row.optional}


@kopf.index(c.GROUP, c.VERSION, c.PLURAL)
async def agent_index(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[Key, AgentRecord]:
    return {(namespace or "", name): AgentRecord.of(dict(body))}


@kopf.index(c.GROUP, c.VERSION, c.PLURAL)
async def peer_index(namespace: str | None, body: kopf.Body, **_: Any) -> dict[str, Peer]:
    """Namespace -> the agents in it, as other agents' objects may name them."""
    return {namespace or "": peer_of(dict(body))}


@kopf.index("v1", "namespaces")
async def namespace_index(name: str, body: kopf.Body, **_: Any) -> dict[str, bool]:
    """Namespace name -> is it being deleted."""
    return {name: bool(body["metadata"].get("deletionTimestamp"))}


@kopf.index(c.CRD_API, c.CRD_PLURAL)
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
        children: ChildStore,
        namespaces: kopf.Index[str, bool],
        crds: kopf.Index[str, tuple[str, ...]],
        peers: kopf.Index[str, Peer],
    ) -> None:
        self.agents = agents
        self.store = children
        self.namespaces = namespaces
        self.crds = crds
        self.peer_table = PeerTable(lambda namespace: peers.get(namespace, []))

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
        return self.store.children(kind, key)

    def namespace_terminating(self, namespace: str) -> bool:
        return any(self.namespaces.get(namespace, []))

    def served(self, row: ChildKind) -> bool:
        if not row.optional:
            return True
        return any(row.version in versions for versions in self.crds.get(row.resource, []))

    def peers(self, namespace: str) -> tuple[Peer, ...]:
        return self.peer_table.peers(namespace)

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
    if config.agent_selector:
        settings.watching.label_selectors[c.GROUP, c.PLURAL] = config.agent_selector
    if config.render.gpu_placement:
        from agentfleet.runtime import placement_handlers

        placement_handlers.configure(settings)
    # No settings.queueing.worker_limit: kopf holds every object's worker until all indices
    # are filled, so a limit below the number of existing objects deadlocks the start-up
    # (measured: 4,000 objects, limit 1,000, nothing reconciled after 240 s). The work queue
    # (a set of agent keys) bounds the real work; an idle per-object worker exits after 1 s.
    settings.batching.idle_timeout = 1.0


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    """Configure kopf, start the informers, metrics, health and the workers. kopf passes each
    index as a keyword argument named after it (agent_index, ...), empty until listed."""
    config: OperatorConfig = memo.get("config") or OperatorConfig()
    configure(settings, config)
    watches = WatchLiveness()
    watchhealth.install(watches)
    informer_count = len(CHILD_KINDS) * max(1, len(config.namespaces))
    writer = await kube.connect(
        pool_size=config.workers * 2 + informer_count + 4,
        limiter=kube.RateLimiter(config.qps, config.burst),
        connect_timeout=config.connect_timeout,
        request_timeout=config.request_timeout,
        prefer_in_cluster=True,  # as kopf's own login: the Pod's ServiceAccount first
    )
    store = ChildStore()
    cache = IndexCache(
        kwargs["agent_index"],
        store,
        kwargs["namespace_index"],
        kwargs["crd_index"],
        kwargs["peer_index"],
    )
    reconciler = Reconciler(writer, cache, config, status_window=config.status_window_seconds)
    controller = Controller(reconciler, config)
    informers = {
        row.resource: Informer(
            writer,
            row.api_version,
            row.kind,
            row.plural,
            OURS,
            child_event_handler(row, store, controller),
            namespaces=config.namespaces,
            server_timeout=config.watch_server_timeout,
            inactivity_seconds=config.watch_inactivity_seconds,
            liveness=watches,
        )
        for row in CHILD_KINDS
    }
    for informer in informers.values():
        informer.start()
    if config.render.gpu_placement:
        placer = Placer(writer, cache.parsed_agent, controller.queue.add, config.placement_policy)
        reconciler.placements = placer.state
        memo["placer"] = placer
        placer.start()
    if config.shard_id:
        await claim_shard(writer, config, memo)
    # No reconcile before every child is known: a child not yet listed would look missing.
    controller.start(ready=[informer.synced for informer in informers.values()])
    if config.metrics_port:
        metrics.AGENTS.count = cache.condition_counts
        prometheus_client.start_http_server(config.metrics_port, config.metrics_address)
    if config.health_port:
        health = Health(controller, config.unhealthy_after_seconds, watches)
        memo["health"] = await health.serve(config.health_address, config.health_port)
    memo["kube"] = writer
    memo["controller"] = controller
    memo["cache"] = cache
    memo["config"] = config
    memo["informers"] = informers


def child_event_handler(
    row: ChildKind, store: ChildStore, controller: Controller
) -> Callable[[str, dict[str, Any]], None]:
    """A child changed or vanished: keep its record, and reconcile its owner(s): a repair, a
    re-creation or a status update may be due. A shared object has no controller, only one
    AIAgent owner per agent using it: each of them."""

    def handle(event_type: str, body: dict[str, Any]) -> None:
        owners = store.remove(body) if event_type == "DELETED" else store.upsert(body, row.shared)
        for owner in owners:
            controller.reconciler.observe_child(event_type, owner, body)
            controller.queue.add(owner)

    return handle


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
    for informer in memo.get("informers", {}).values():
        await informer.stop()
    if "health" in memo:
        await memo["health"].cleanup()
    await memo["kube"].close()


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
    if type == "MODIFIED" and controller.reconciler.caused_by_us(
        key, body["metadata"].get("resourceVersion")
    ):
        return  # the echo of our own status write: nothing to do
    controller.queue.add(key)
    if type == "ADDED" and not (body.get("status") or {}).get("conditions"):
        controller.acknowledge(key)
    peers: PeerTable = memo["cache"].peer_table
    peer = None if type == "DELETED" else peer_of(dict(body))
    changed = peers.note(key, peer, memo["config"].render.mesh_mode, listing=type is None)
    if type is None or not changed:
        return  # the initial listing, or nothing others depend on changed
    for other in peers.dependents(key[0]):
        if other != name:
            controller.queue.add((key[0], other))


@kopf.on.event(c.CRD_API, c.CRD_PLURAL)
async def crd_changed(name: str, memo: kopf.Memo, **_: Any) -> None:
    """An optional feature's CRD appeared or changed: list its objects, and every agent may
    now converge."""
    if name in OPTIONAL_RESOURCES:
        memo["informers"][name].wake()
        controller: Controller = memo["controller"]
        for key in memo["cache"].agent_keys():
            controller.queue.add(key)
