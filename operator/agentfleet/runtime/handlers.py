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

With `--leader-elect` every replica runs all of this (its caches stay warm), but the
workers, the placer and the shard claim wait for leadership (leader.py), and every write
passes the leader's gate.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
from agentfleet.kube import config as kubeconfig
from agentfleet.kube.informer import Informer
from agentfleet.kube.liveness import WatchLiveness
from agentfleet.render.children import CHILD_KINDS, ChildKind
from agentfleet.render.context import Peer
from agentfleet.runtime import leader, sharding, watchhealth
from agentfleet.runtime.health import Health
from agentfleet.telemetry import metrics

log = logging.getLogger(__name__)
OURS = f"{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"
MARKED = f"{c.LABEL_AGENT_IDENTITY}=true"
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
        self.peer_index = peers
        self.peer_table = PeerTable(lambda namespace: peers.get(namespace, []))
        # (namespace, name) of the ServiceAccounts marked for agents (MARKED), from a watch
        # the API server filters by that label: only marked ones cross the wire.
        self.marked: set[tuple[str, str]] = set()

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

    def deployment_uid(self, key: Key) -> str | None:
        """The uid of the Deployment the operator keeps for an agent: named after it and
        controlled by the AIAgent's uid (the placer trusts only its Pods' decisions)."""
        agent = self.agent(key)
        if agent is None:
            return None
        for record in self.store.children("Deployment", key):
            if record.name == key[1] and record.controller_uid == agent.uid:
                return record.uid
        return None

    def namespace_terminating(self, namespace: str) -> bool:
        return any(self.namespaces.get(namespace, []))

    def served(self, row: ChildKind) -> bool:
        if not row.optional:
            return True
        return any(row.version in versions for versions in self.crds.get(row.resource, []))

    def peers(self, namespace: str) -> tuple[Peer, ...]:
        return self.peer_table.peers(namespace)

    def marked_service_account(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self.marked

    def agents_running_as(self, namespace: str, service_account: str) -> list[str]:
        """Names of the namespace's agents whose pods run as this ServiceAccount (read from
        kopf's index directly: the sorted peer table must not be filled before it lists)."""
        return [
            peer.name
            for peer in self.peer_index.get(namespace, [])
            if peer.service_account == service_account
        ]

    def agent_keys(self) -> list[Key]:
        return list(self.agents)

    def condition_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for key in self.agents:
            for record in self.agents.get(key, []):
                for condition in record.conditions:
                    counts[condition] = counts.get(condition, 0) + 1
        return counts


class Backoffs:
    """kopf's retry delays for a failed API request, without end: its default gives up after
    8 tries (about a minute), and a watch that gives up ends the operator, so an API server
    outage longer than that would crash-loop it. Iterated afresh for every request."""

    def __iter__(self) -> Iterator[float]:
        return itertools.chain((1, 1, 2, 3, 5), itertools.repeat(5))


@dataclass
class Exit:
    """How the process ends: kopf stops when `flag` is set (kopf.run's stop_flag); the
    runner then exits with `code`."""

    flag: asyncio.Event = field(default_factory=asyncio.Event)
    code: int = 0
    reason: str = ""
    grace_seconds: float = 20.0

    def fail(self, reason: str) -> None:
        """Stop the operator and exit non-zero (the kubelet restarts it). Writes have stopped
        already (the gates refuse them); if kopf's clean-up hangs, the process ends anyway."""
        if self.code:
            return
        log.error("stopping the operator: %s", reason)
        self.code, self.reason = 1, reason
        self.flag.set()
        asyncio.get_running_loop().call_later(self.grace_seconds, os._exit, 1)


def configure(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    """kopf's watches: timeouts everywhere, paginated initial lists, server-side filters."""
    # kopf would post every handler log line as a Kubernetes Event: a write per event.
    settings.posting.enabled = False
    settings.networking.request_timeout = config.request_timeout
    settings.networking.connect_timeout = config.connect_timeout
    settings.networking.error_backoffs = Backoffs()
    # kopf's own inactivity timeout is an asyncio.timeout() around a generator that yields
    # events: when it expires while the consuming task handles an event, it cancels that task
    # instead, the watcher ends as cancelled and kopf never starts it again (seen here under
    # load: the Pod and AIAgent watches stopped for good). So it is off, and a silent watch is
    # ended by plain timeouts: the server closes every watch after 80% of the inactivity
    # period, and the client gives up on one that is still open after the whole period.
    inactivity = config.watch_inactivity_seconds
    server_timeout = max(1, min(config.watch_server_timeout, int(inactivity * 0.8)))
    settings.watching.inactivity_timeout = 10.0**9
    settings.watching.server_timeout = server_timeout
    settings.watching.client_timeout = max(inactivity, server_timeout + 1)
    settings.watching.connect_timeout = config.connect_timeout
    settings.watching.chunk_size = 500  # the initial list comes in pages, not all at once
    if config.agent_selector:
        settings.watching.label_selectors[c.GROUP, c.PLURAL] = config.agent_selector
    # No settings.queueing.worker_limit: kopf holds every object's worker until all indices
    # are filled, so a limit below the number of existing objects deadlocks the start-up
    # (measured: 4,000 objects, limit 1,000, nothing reconciled after 240 s). The work queue
    # (a set of agent keys) bounds the real work; an idle per-object worker exits after 1 s.
    settings.queueing.idle_timeout = 1.0


@kopf.on.login()
def login(settings: kopf.OperatorSettings, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """kopf connects where the operator's own client does. In a Pod: the API server at
    $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT (as client-go and kube/config.py read
    them) with the ServiceAccount's token and CA, read again at each login (kopf logs in again
    on a 401, after the token rotated). Without this, kopf picks a login by which client
    libraries are installed: in the image (none) that one always dials
    https://kubernetes.default.svc:443, so the operator's watches and its own client could go
    to different places, and where the API server is elsewhere (the image test: another port)
    kopf never connected (tests/image/test_chart_processes.py). Outside a Pod: kopf's own
    kubeconfig login ($KUBECONFIG or ~/.kube/config), as for an installed operator."""
    if not kubeconfig.in_cluster_available():
        return kopf.login_with_kubeconfig(settings=settings, **kwargs)
    account = kubeconfig.SERVICE_ACCOUNT_DIR
    return kopf.ConnectionInfo(
        server=kubeconfig.in_cluster_server(),
        ca_path=str(account / "ca.crt"),
        token=(account / "token").read_text().strip(),
        default_namespace=kubeconfig.in_cluster_namespace(),
        trust_env=settings.networking.trust_env,
    )


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    """Configure kopf, start the informers, metrics, health and the workers. kopf passes each
    index as a keyword argument named after it (agent_index, ...), empty until listed."""
    config: OperatorConfig = memo.get("config") or OperatorConfig()
    exit_: Exit = memo.get("exit") or Exit()
    configure(settings, config)
    watches = WatchLiveness()
    watchhealth.install(watches)
    informer_count = (len(CHILD_KINDS) + 3) * max(1, len(config.namespaces)) + 2
    writer = await kube.connect(
        pool_size=config.workers * 2 + informer_count + 4,
        limiter=kube.RateLimiter(config.qps, config.burst),
        connect_timeout=config.connect_timeout,
        request_timeout=config.request_timeout,
        prefer_in_cluster=True,  # as kopf's own login: the Pod's ServiceAccount first
    )
    # Asked again when a write's connection is in hand (before the session exists).
    kube.gate_connections(writer, writer.refused)
    memo["kube"] = writer
    # Leases and the health probe get their own connections and no rate limit: a renewal
    # must never queue behind a burst of reconciles.
    side = await kube.connect(
        pool_size=4,
        connect_timeout=config.connect_timeout,
        request_timeout=min(config.request_timeout, 5.0),
        prefer_in_cluster=True,
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
            child_event_handler(row, store, controller, memo),
            namespaces=config.namespaces,
            server_timeout=config.watch_server_timeout,
            inactivity_seconds=config.watch_inactivity_seconds,
            liveness=watches,
        )
        for row in CHILD_KINDS
    }
    # spec.serviceAccountName may name only ServiceAccounts marked for agents (policy.py):
    # watch the marks, so an agent is judged again when its ServiceAccount's mark changes.
    identities = Informer(
        writer,
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        MARKED,
        identity_event_handler(cache, controller),
        namespaces=config.namespaces,
        server_timeout=config.watch_server_timeout,
        inactivity_seconds=config.watch_inactivity_seconds,
        liveness=watches,
    )
    for informer in [*informers.values(), identities]:
        informer.start()
    leadership = elect(config, side, exit_, writer, memo)
    writer.gates.append(leadership.refused)
    memo["leadership"] = leadership
    memo["side"] = side
    if config.render.gpu_placement:
        from agentfleet.runtime import placement_handlers

        placer = Placer(
            writer,
            cache.parsed_agent,
            controller.queue.add,
            config.placement_policy,
            deployment_uid=cache.deployment_uid,
            max_gpus=config.max_gpus_per_node,
            lease_namespace=config.node_agent_namespace,
            unschedulable_seconds=config.unschedulable_seconds,
        )
        reconciler.placements = placer.state
        memo["placer"] = placer
        memo[placement_handlers.INDEXED] = indexed = asyncio.Event()
        watches_of_placer = placement_handlers.informers(writer, config, placer, watches)
        for informer in watches_of_placer:
            informer.start()
        memo["placement_informers"] = watches_of_placer
        placer.start(
            ready=[
                indexed,
                *(informer.synced for informer in watches_of_placer),
                *(informer.synced for informer in informers.values()),
            ],
            leading=leadership.leading,
        )
    if isinstance(leadership, leader.SoleReplica) and config.shard_id:
        await claim_shard(writer, config, memo, exit_, shard_holder(config))
    # No reconcile before every child is known: a child not yet listed would look missing;
    # nor before the placement books are (a GPU agent's Placed condition reads them).
    synced = [informer.synced for informer in [*informers.values(), identities]]
    ready = list(synced)
    if "placer" in memo:
        ready.append(memo["placer"].books_ready)
    controller.start(ready=ready, leading=leadership.leading)
    if config.metrics_port:
        metrics.AGENTS.count = cache.condition_counts
        prometheus_client.start_http_server(config.metrics_port, config.metrics_address)
    if config.health_port:
        health = Health(
            controller,
            config.unhealthy_after_seconds,
            watches,
            leadership,
            api_answers=side.server_ready,
            synced=synced,
        )
        memo["health"] = await health.serve(config.health_address, config.health_port)
    memo["controller"] = controller
    memo["cache"] = cache
    memo["config"] = config
    memo["informers"] = informers
    memo["identities"] = identities
    if isinstance(leadership, leader.LeaderElector):
        leadership.start()


def elect(
    config: OperatorConfig, side: kube.Kube, exit_: Exit, writer: kube.Kube, memo: kopf.Memo
) -> leader.Leadership:
    """With --leader-elect, a candidate for the leader Lease (which claims the shard, if any,
    once it leads); without, the only replica, leading from the start."""
    identity = leader.identity()
    if not config.leader_elect:
        return leader.SoleReplica(identity)

    async def begin_leading() -> None:
        if config.shard_id:
            await claim_shard(writer, config, memo, exit_, shard_holder(config))

    return leader.LeaderElector(
        side,
        config.leader_election_namespace,
        config.leader_election_id,
        identity,
        leader.Timing(
            config.leader_elect_lease_duration,
            config.leader_elect_renew_deadline,
            config.leader_elect_retry_period,
        ),
        on_lost=exit_.fail,
        on_started=begin_leading,
    )


def shard_holder(config: OperatorConfig) -> str:
    """Who holds the shard claim. The replicas of one leader-elected Deployment share it:
    their leader Lease already makes sure only one serves, and a new leader must not wait
    for the old one's claim to lapse."""
    if config.leader_elect:
        return f"{config.leader_election_namespace}/{config.leader_election_id}"
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def child_event_handler(
    row: ChildKind, store: ChildStore, controller: Controller, memo: kopf.Memo | None = None
) -> Callable[[str, dict[str, Any]], None]:
    """A child changed or vanished: keep its record, and reconcile its owner(s): a repair, a
    re-creation or a status update may be due. A shared object has no controller, only one
    AIAgent owner per agent using it: each of them."""

    def handle(event_type: str, body: dict[str, Any]) -> None:
        owners = store.remove(body) if event_type == "DELETED" else store.upsert(body, row.shared)
        for owner in owners:
            controller.reconciler.observe_child(event_type, owner, body)
            controller.queue.add(owner)
        if row.kind == "Deployment" and memo is not None and "placer" in memo:
            placer: Placer = memo["placer"]
            placer.agent_identity_changed(owners)  # its Pods' decisions may count now

    return handle


def identity_event_handler(
    cache: IndexCache, controller: Controller
) -> Callable[[str, dict[str, Any]], None]:
    """A ServiceAccount was marked for agents, or its mark went (the watch then says
    DELETED: the object left the label selector): judge again the agents that name it."""

    def handle(event_type: str, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        namespace, name = meta.get("namespace") or "", str(meta.get("name"))
        marked = (meta.get("labels") or {}).get(c.LABEL_AGENT_IDENTITY) == "true"
        if event_type != "DELETED" and marked:
            cache.marked.add((namespace, name))
        else:
            cache.marked.discard((namespace, name))
        for agent in cache.agents_running_as(namespace, name):
            controller.reconciler.unsettle((namespace, agent))
            controller.queue.add((namespace, agent))

    return handle


async def claim_shard(
    writer: kube.Kube, config: OperatorConfig, memo: kopf.Memo, exit_: Exit, holder: str
) -> None:
    """Serve nothing unless this operator's share is its own (see sharding.py); from then on
    every write also needs the claim to be renewed in time. The claim itself is written
    through a client gated by the leader only, on connections of its own."""
    claim_kube = kube.Kube(memo["side"].transport)
    claim_kube.gates = list(writer.gates)
    scope = sharding.Scope(config.namespaces, config.agent_selector)
    claim = sharding.ShardClaim(claim_kube, config.shard_id, scope, config.shard_namespace, holder)
    try:
        await claim.acquire()
    except sharding.ShardConflict as conflict:
        message = f"refusing to serve shard {config.shard_id!r}: {conflict}"
        raise kopf.PermanentError(message) from conflict
    writer.gates.append(claim.refused)
    memo["claim"] = claim
    memo["renewal"] = asyncio.create_task(
        claim.renew_forever(exit_.fail), name="shard-lease-renewal"
    )


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    """Stop the work first, then give up the claims (client-go's ReleaseOnCancel): nothing
    is written after the other replica may have taken over."""
    leadership = memo.get("leadership")
    if isinstance(leadership, leader.LeaderElector):
        await leadership.stop()  # no renewal from now on: the Lease is released or runs out
    if "placer" in memo:
        await memo["placer"].stop()
    if "controller" in memo:
        await memo["controller"].stop()
    if "renewal" in memo:
        memo["renewal"].cancel()
        await memo["claim"].release()
    if isinstance(leadership, leader.LeaderElector):
        await leadership.release()
    for informer in [*memo.get("informers", {}).values(), *memo.get("placement_informers", ())]:
        await informer.stop()
    if "identities" in memo:
        await memo["identities"].stop()
    if "health" in memo:
        await memo["health"].cleanup()
    for name in ("kube", "side"):
        if name in memo:
            await memo[name].close()


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
    if type in ("ADDED", "DELETED") and "placer" in memo:
        placer: Placer = memo["placer"]
        placer.agent_identity_changed([key])  # its Pods' decisions count with it, or not
    if type == "MODIFIED" and controller.reconciler.caused_by_us(
        key, body["metadata"].get("resourceVersion")
    ):
        return  # the echo of our own status write: nothing to do
    controller.queue.add(key)
    if type == "DELETED" and "placer" in memo:
        memo["placer"].agent_gone(key)
    if type == "ADDED" and not (body.get("status") or {}).get("conditions"):  # leaders only
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
