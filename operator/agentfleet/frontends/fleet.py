"""Client-side operations on AIAgents, through the API server: what the CLI and HTTP API do.

Both front ends only create, read, scale and delete AIAgents (and read Pods for logs, Nodes
and Leases for inventory), so whatever they do is what `kubectl` would see and could undo.
Every request goes through kube/client.py (paths, timeouts, errors: `ApiError`); requests and
answers are plain dicts, as `kubectl get -o json` shows them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from agentfleet import placement
from agentfleet.api import constants as c
from agentfleet.api import quantity, timestamps
from agentfleet.kube import client as kube
from agentfleet.kube import config as kube_config
from agentfleet.kube.client import AGENTS, LEASES, NODES, PODS, ApiError, Kube, Target
from agentfleet.placement import labels as placement_labels

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"


class NoLogs(Exception):
    """A Pod that cannot have logs (not started yet, or on a simulated node)."""


async def connect(target: Target) -> Fleet:
    """The cluster and namespace kubectl would use with these flags (kube.connect)."""
    return Fleet(await kube.connect(target))


def context_names(target: Target) -> list[str]:
    """Every context of the kubeconfig the target reads, sorted (`--all-contexts`)."""
    contexts, _ = kube_config.list_contexts(target.kubeconfig)
    if not contexts:
        raise kube_config.ConfigError("no kubeconfig to read contexts from")
    return contexts


# --- reading an agent's state ----------------------------------------------------------------


def condition(agent: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (agent.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


@dataclass(frozen=True)
class Readiness:
    """Where an agent stands for someone waiting on it."""

    state: Literal["ready", "waiting", "failed"]
    reason: str
    message: str

    @property
    def unplaceable(self) -> bool:
        return self.state == "failed" and self.reason in c.PLACEMENT_FAILURES


def readiness(agent: dict[str, Any]) -> Readiness:
    """Ready, still waiting (and on what), or failed for a reason only a person can fix:
    no node can place it (Placed=False, Insufficient*) or it is Stalled."""
    generation = agent["metadata"].get("generation", 0)
    observed = (agent.get("status") or {}).get("observedGeneration")
    if observed is None or observed < generation:
        return Readiness(
            "waiting",
            c.Reason.PENDING,
            f"waiting for the operator to observe generation {generation}",
        )
    placed = condition(agent, c.COND_PLACED)
    if placed and placed.get("status") == "False" and placed.get("reason") in c.PLACEMENT_FAILURES:
        return Readiness("failed", str(placed["reason"]), str(placed.get("message", "")))
    stalled = condition(agent, c.COND_STALLED)
    if stalled and stalled.get("status") == "True":
        return Readiness("failed", str(stalled.get("reason", "")), str(stalled.get("message", "")))
    ready = condition(agent, c.COND_READY) or {}
    if ready.get("status") == "True":
        return Readiness("ready", str(ready.get("reason", "")), str(ready.get("message", "")))
    return Readiness(
        "waiting",
        str(ready.get("reason", c.Reason.PENDING)),
        str(ready.get("message") or "waiting for the operator"),
    )


def age(stamp: str | None, now: datetime.datetime | None = None) -> float | None:
    """Seconds since a timestamp of the API server's; None without one."""
    moment = timestamps.parse(stamp)
    if moment is None:
        return None
    return ((now or datetime.datetime.now(datetime.UTC)) - moment).total_seconds()


def human_age(seconds: float | None) -> str:
    """kubectl's style: 45s, 3m12s, 5h, 2d."""
    if seconds is None:
        return "-"
    whole = max(0, int(seconds))
    if whole < 120:
        return f"{whole}s"
    if whole < 600:
        return f"{whole // 60}m{whole % 60}s"
    if whole < 3 * 3600:
        return f"{whole // 60}m"
    if whole < 48 * 3600:
        return f"{whole // 3600}h"
    return f"{whole // 86400}d"


def without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}


# --- nodes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeView:
    """A Node's capabilities and liveness, as the node-registration world reported them.

    GPUs are read by the placement package (GPU Feature Discovery, AMD labeller and node agent
    labels), so `nodes`, `gpus` and the operator's placement decisions see the same inventory."""

    name: str
    uid: str
    ready: str  # "True" | "False" | "Unknown"
    address: str | None
    os: str
    arch: str
    cpu: str
    memory_mib: int
    gpus: list[dict[str, Any]]
    heartbeat_age: float | None  # seconds since the node agent renewed its Lease; None: none
    placement: str  # "Ready", or why placement skips the node (NotReady, stale heartbeat ...)
    labels: dict[str, str] = field(default_factory=dict)  # agentfleet.io/* from the node agent
    annotations: dict[str, str] = field(default_factory=dict)
    simulated: bool = False

    @property
    def gpu_summary(self) -> str:
        if not self.gpus:
            return "-"
        parts = []
        for gpu in self.gpus:
            text = f"{gpu['count']}x {gpu['product'] or gpu['vendor']}"
            if gpu.get("vram_mib"):
                text += f" {quantity.format_gib(gpu['vram_mib'])}"
            if gpu.get("sharing") not in (None, "none"):
                text += f" ({gpu['sharing']}, {gpu['slots']} slots)"
            parts.append(text)
        return ", ".join(parts)


def lease_by_node(leases: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The node agent's Leases by the Node they speak for (label, else name)."""
    found = {}
    for lease in leases:
        node = placement_labels.lease_node(lease)
        if node:
            found[node] = lease
    return found


def node_view(
    node: dict[str, Any], lease: dict[str, Any] | None, now: datetime.datetime
) -> NodeView:
    meta, status = node["metadata"], node.get("status") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    allocatable = status.get("allocatable") or {}
    ready = next(
        (
            x.get("status", "Unknown")
            for x in status.get("conditions") or []
            if x["type"] == "Ready"
        ),
        "Unknown",
    )
    address = next(
        (a["address"] for a in status.get("addresses") or [] if a.get("type") == "InternalIP"),
        None,
    )
    heartbeat, seconds = placement.heartbeat_of(lease) if lease else (None, None)
    read = placement.node_from_object(node, now, heartbeat, seconds)
    inventory = read if isinstance(read, placement.NodeInventory) else read.inventory
    state = (
        "Ready" if isinstance(read, placement.NodeInventory) else f"{read.reason}: {read.detail}"
    )
    memory = allocatable.get("memory")
    info = status.get("nodeInfo") or {}
    return NodeView(
        name=meta["name"],
        uid=meta.get("uid", ""),
        ready=str(ready),
        address=address,
        os=labels.get("kubernetes.io/os", info.get("operatingSystem", "")),
        arch=labels.get("kubernetes.io/arch", info.get("architecture", "")),
        cpu=str(allocatable.get("cpu", "0")),
        memory_mib=int(quantity.parse(memory) / 2**20) if memory else 0,
        gpus=node_gpus(inventory),
        heartbeat_age=(now - heartbeat).total_seconds() if heartbeat else None,
        placement=state,
        labels={k: v for k, v in labels.items() if k.startswith(f"{c.GROUP}/")},
        annotations={k: v for k, v in annotations.items() if k.startswith(f"{c.GROUP}/")},
        simulated=annotations.get(KWOK_NODE_ANNOTATION) == "fake",
    )


def node_gpus(inventory: placement.NodeInventory | None) -> list[dict[str, Any]]:
    """One entry per kind of GPU on the node (count, product, VRAM of the smallest)."""
    if inventory is None or not inventory.gpus:
        return []
    return [
        {
            "vendor": inventory.vendor,
            "product": inventory.product,
            "count": len(inventory.gpus),
            "vram_mib": min(gpu.memory_mib for gpu in inventory.gpus),
            "sharing": inventory.sharing,
            "slots": inventory.slots,
        }
    ]


# --- the client ------------------------------------------------------------------------------


class Fleet:
    """AIAgents (and what the front ends read beside them) in one cluster."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    @property
    def namespace(self) -> str:
        """The namespace of requests that name none (-n, the context's, the Pod's)."""
        return self.kube.namespace

    async def close(self) -> None:
        await self.kube.close()

    async def __aenter__(self) -> Fleet:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # -- agents --

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        namespace = body["metadata"].get("namespace") or self.namespace
        body = {**body, "metadata": {**body["metadata"], "namespace": namespace}}
        return await self.kube.request("POST", AGENTS.ref(namespace), body=body)

    async def get(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        return await self.kube.request("GET", AGENTS.ref(namespace or self.namespace, name))

    async def list_agents(
        self, namespace: str | None = None, all_namespaces: bool = False
    ) -> list[dict[str, Any]]:
        ref = AGENTS.ref("" if all_namespaces else namespace or self.namespace)
        return sorted(
            await self.kube.list(ref),
            key=lambda a: (a["metadata"].get("namespace", ""), a["metadata"]["name"]),
        )

    async def delete(
        self,
        name: str,
        namespace: str | None = None,
        uid: str | None = None,
        cascade: str = "Background",
    ) -> None:
        """Delete an agent; its children go with it (ownerReferences). `Foreground` keeps
        the agent visible until its Deployment and Service are gone."""
        ref = AGENTS.ref(namespace or self.namespace, name)
        await self.kube.request("DELETE", ref, body=kube.delete_options(cascade, uid))

    async def scale(self, name: str, replicas: int, namespace: str | None = None) -> dict[str, Any]:
        """Through the scale subresource, exactly as `kubectl scale aia/<name>` does."""
        return await self.kube.request(
            "PATCH",
            AGENTS.ref(namespace or self.namespace, name),
            subresource="scale",
            body={"spec": {"replicas": replicas}},
            content_type=kube.MERGE_PATCH,
        )

    async def apply(self, body: dict[str, Any], manager: str) -> dict[str, Any]:
        """Server-side apply of a whole AIAgent as `manager` (forced: the fields it sends are
        its to own; fields it sent before and leaves out now are removed)."""
        meta = body["metadata"]
        body = {**body, "metadata": {**meta, "namespace": meta.get("namespace") or self.namespace}}
        return await self.kube.apply(body, c.PLURAL, None, manager=manager)

    async def watch_agents(
        self, namespace: str | None = None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """("ADDED", agent) for every agent of the namespace now, then (event type, agent) for
        each change, until the caller stops iterating. A watch the API server ends is resumed
        from the last version seen (listed again after 410 Gone, with fresh ADDED events)."""
        ref = AGENTS.ref(namespace or self.namespace)
        version = ""
        while True:
            if not version:
                listing = await self.kube.request("GET", ref)
                for agent in listing.get("items") or []:
                    yield "ADDED", agent
                version = listing["metadata"]["resourceVersion"]
            query = [
                ("resourceVersion", version),
                ("allowWatchBookmarks", "true"),
                ("timeoutSeconds", "60"),  # within the client's own 5-minute timeout
            ]
            try:
                async with contextlib.aclosing(self.kube.watch(ref, query)) as events:
                    async for kind, obj in events:
                        version = (obj.get("metadata") or {}).get("resourceVersion") or version
                        if kind in ("ADDED", "MODIFIED", "DELETED"):
                            yield kind, obj
            except ApiError as error:
                if not error.gone:
                    raise
                version = ""  # too old to resume from: list again

    async def watch_agent(
        self, name: str, namespace: str | None = None
    ) -> AsyncIterator[dict[str, Any] | None]:
        """The agent now and after every change; None once it is gone. Never ends by itself:
        wrap it in a timeout."""
        ref = AGENTS.ref(namespace or self.namespace)
        only = ("fieldSelector", f"metadata.name={name}")
        while True:
            listing = await self.kube.request("GET", ref, query=[only])
            items = listing.get("items") or []
            yield items[0] if items else None
            query = [
                only,
                ("resourceVersion", listing["metadata"]["resourceVersion"]),
                ("allowWatchBookmarks", "false"),
                ("timeoutSeconds", "60"),
            ]
            try:
                async with contextlib.aclosing(self.kube.watch(ref, query)) as events:
                    async for kind, agent in events:
                        if kind == "DELETED":
                            yield None
                        elif kind in ("ADDED", "MODIFIED"):
                            yield agent
            except ApiError as error:
                if not error.gone:
                    raise
                # the version we listed is too old to watch from: list again

    async def wait_ready(
        self,
        name: str,
        within: float,
        namespace: str | None = None,
        progress: Callable[[Readiness], None] | None = None,
    ) -> Readiness:
        """Follow the agent until it is Ready or failed; on timeout, the last state seen
        (state "waiting"). A deleted agent is failed with reason Deleted."""
        last = Readiness("waiting", c.Reason.PENDING, "waiting for the operator")
        try:
            async with asyncio.timeout(within):
                async for agent in self.watch_agent(name, namespace):
                    if agent is None:
                        return Readiness("failed", "Deleted", f"{name} was deleted")
                    last = readiness(agent)
                    if progress:
                        progress(last)
                    if last.state != "waiting":
                        return last
        except TimeoutError:
            pass
        return last

    async def wait_deleted(self, name: str, within: float, namespace: str | None = None) -> bool:
        try:
            async with asyncio.timeout(within):
                async for agent in self.watch_agent(name, namespace):
                    if agent is None:
                        return True
        except TimeoutError:
            return False
        return False

    # -- pods and logs --

    async def agent_pods(self, name: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """The agent's Pods, oldest first: replica i is the i-th of this list."""
        selector = f"{c.LABEL_NAME}={c.APP_NAME},{c.LABEL_INSTANCE}={name}"
        items = await self.kube.list(
            PODS.ref(namespace or self.namespace), query=[("labelSelector", selector)]
        )
        return sorted(
            items,
            key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]),
        )

    async def pod_logs(
        self,
        pod: dict[str, Any],
        follow: bool = False,
        tail: int | None = None,
        since_seconds: int | None = None,
    ) -> AsyncIterator[str]:
        """Lines of the agent container's log, read through the API server."""
        meta = pod["metadata"]
        query = [("container", c.CONTAINER_NAME)]
        if follow:
            query.append(("follow", "true"))
        if tail is not None:
            query.append(("tailLines", str(tail)))
        if since_seconds is not None:
            query.append(("sinceSeconds", str(since_seconds)))
        if not (pod.get("spec") or {}).get("nodeName"):
            raise NoLogs(f"Pod {meta['name']} is not scheduled to a node yet: it has no logs")
        try:
            async with self.kube.stream(
                PODS.ref(meta["namespace"], meta["name"]), query, subresource="log"
            ) as content:
                async for raw in kube.lines(content):
                    yield raw.decode(errors="replace")
        except ApiError as error:
            raise await self._no_logs_reason(pod, error) from error

    async def _no_logs_reason(self, pod: dict[str, Any], error: ApiError) -> Exception:
        """Why a Pod that exists has no logs. The API server answers 404 when the node
        serves none (a simulated kwok node has no kubelet); other errors stay errors."""
        if not error.not_found:
            return error
        name, node_name = pod["metadata"]["name"], pod["spec"]["nodeName"]
        try:
            node = await self.kube.request("GET", NODES.ref("", node_name))
        except ApiError:
            node = {"metadata": {}}
        annotations = node["metadata"].get("annotations") or {}
        if annotations.get(KWOK_NODE_ANNOTATION) == "fake":
            return NoLogs(
                f"Pod {name} runs on the simulated node {node_name} (kwok): nothing runs "
                "there, so there are no logs to read"
            )
        return NoLogs(f"node {node_name} serves no logs for Pod {name}: {error.message}")

    # -- nodes and inventory --

    async def nodes(self) -> list[dict[str, Any]]:
        return sorted(await self.kube.list(NODES.ref()), key=lambda n: n["metadata"]["name"])

    async def all_pods(self) -> list[dict[str, Any]]:
        """Every Pod that holds resources (not finished), for the GPU ledger."""
        query = [("fieldSelector", "status.phase!=Succeeded,status.phase!=Failed")]
        return await self.kube.list(PODS.ref(), query=query)

    async def node_leases(self) -> list[dict[str, Any]]:
        """The node agent's heartbeat Leases ([] where there are none, or when they may not
        be read: a heartbeat then shows as unknown, never as an error)."""
        try:
            return await self.kube.list(LEASES.ref(c.OPERATOR_NAMESPACE))
        except ApiError as error:
            if error.status in (403, 404):
                return []
            raise

    async def node_views(self) -> list[NodeView]:
        nodes, leases = await asyncio.gather(self.nodes(), self.node_leases())
        now = datetime.datetime.now(datetime.UTC)
        by_node = lease_by_node(leases)
        return [node_view(node, by_node.get(node["metadata"]["name"]), now) for node in nodes]

    async def gpu_table(self) -> list[placement.GPURow]:
        """Per GPU: total, committed and free VRAM and its agents, from the placement ledger
        rebuilt from every Pod's placement annotation."""
        nodes, pods, leases = await asyncio.gather(
            self.nodes(), self.all_pods(), self.node_leases()
        )
        now = datetime.datetime.now(datetime.UTC)
        inventory = placement.Inventory.of(nodes, now, leases)
        return placement.gpu_table(inventory, placement.Ledger.from_pods(pods))

    # -- who is asking (for the HTTP API) --

    async def review_token(self, token: str, audience: str = "") -> dict[str, Any] | None:
        """The user a bearer token belongs to (TokenReview), or None if it is not valid.

        With `audience`, only a token issued for that audience is valid (the API server must
        say so in status.audiences): a token meant for the API server itself, or for another
        service, is refused, and a token given to us cannot be replayed against the API server."""
        spec: dict[str, Any] = {"token": token}
        if audience:
            spec["audiences"] = [audience]
        review = await self.kube.request(
            "POST",
            kube.TOKEN_REVIEWS.ref(),
            body=kube.TOKEN_REVIEWS.body(spec=spec),
        )
        status = review.get("status") or {}
        if not status.get("authenticated"):
            return None
        if audience and audience not in (status.get("audiences") or []):
            return None
        return dict(status["user"])

    async def may(self, user: dict[str, Any], check: Access) -> bool:
        """Would the API server let this user do this (SubjectAccessReview)?"""
        attributes: dict[str, Any] = {"verb": check.verb, "resource": check.resource}
        if check.group:
            attributes["group"] = check.group
        if check.namespace:
            attributes["namespace"] = check.namespace
        if check.name:
            attributes["name"] = check.name
        review = await self.kube.request(
            "POST",
            kube.ACCESS_REVIEWS.ref(),
            body=kube.ACCESS_REVIEWS.body(
                spec={
                    "user": user.get("username"),
                    "uid": user.get("uid"),
                    "groups": user.get("groups") or [],
                    "extra": user.get("extra") or {},
                    "resourceAttributes": attributes,
                },
            ),
        )
        return bool((review.get("status") or {}).get("allowed"))


@dataclass(frozen=True)
class Access:
    """One permission, as RBAC names it: verb on a resource of a group in a namespace."""

    verb: str
    resource: str
    group: str = ""
    namespace: str | None = None
    name: str | None = None

    def __str__(self) -> str:
        where = f" in namespace {self.namespace}" if self.namespace else " cluster-wide"
        kind = f"{self.resource}.{self.group}" if self.group else self.resource
        return f"{self.verb} {kind}{where}"
