"""Client-side operations on AIAgents, through the API server: what the CLI and HTTP API do.

Both front ends only create, read, scale and delete AIAgents (and read Pods for logs, Nodes
and Leases for inventory), so whatever they do is what `kubectl` would see and could undo.
kubernetes_asyncio only (the operator image has no sync client); requests and answers are
plain dicts, as `kubectl get -o json` shows them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from agentfleet import placement
from agentfleet.api import constants as c
from agentfleet.api import quantity
from agentfleet.placement import labels as placement_labels

AGENTS_PATH = f"/apis/{c.GROUP}/{c.VERSION}"
# A GPU agent that no node can take gets Placed=False with one of these reasons.
COND_PLACED = "Placed"
PLACEMENT_FAILURES = frozenset(
    {"InsufficientVRAM", "InsufficientGPU", "InsufficientCPU", "InsufficientMemory"}
)
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
IN_CLUSTER_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class FleetError(Exception):
    """The API server refused a request: its HTTP status and its own message."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason  # metav1.Status reason, e.g. AlreadyExists, NotFound

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def invalid(self) -> bool:
        """Refused by validation (schema, CEL rules): the input was wrong, nothing created."""
        return self.status == 422


class NoLogs(Exception):
    """A Pod that cannot have logs (not started yet, or on a simulated node)."""


# --- connecting ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Which cluster and namespace, the way kubectl's flags say it."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None


async def connect(target: Target) -> Fleet:
    """kubectl's order: --kubeconfig, $KUBECONFIG, ~/.kube/config, then the Pod's own
    ServiceAccount. The namespace: -n, else the context's, else the Pod's, else default."""
    config_file = _kubeconfig_file(target)
    namespace = target.namespace
    if config_file:
        api = await config.new_client_from_config(
            config_file=config_file, context=target.context, persist_config=False
        )
        namespace = namespace or _context_namespace(config_file, target.context)
    else:
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        api = client.ApiClient(configuration=configuration)
        namespace = namespace or _pod_namespace()
    return Fleet(api, namespace or "default")


def _kubeconfig_file(target: Target) -> str | None:
    """The kubeconfig to read (several joined by ':' like $KUBECONFIG); None: in a Pod."""
    path = target.kubeconfig or os.environ.get("KUBECONFIG")
    default_file = Path.home() / ".kube" / "config"
    if not (path or default_file.exists() or target.context):
        return None
    config_file = path or str(default_file)
    files = config_file.split(os.pathsep)
    if not any(Path(f).expanduser().exists() for f in files):
        raise config.ConfigException(f"{config_file} does not exist")
    return config_file


def _pod_namespace() -> str | None:
    if IN_CLUSTER_NAMESPACE_FILE.exists():
        return IN_CLUSTER_NAMESPACE_FILE.read_text().strip() or None
    return None


def _context_namespace(config_file: str, context: str | None) -> str | None:
    contexts, active = config.list_kube_config_contexts(config_file)
    chosen = next((x for x in contexts if x.get("name") == context), None) if context else active
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else None


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
        return self.state == "failed" and self.reason in PLACEMENT_FAILURES


def readiness(agent: dict[str, Any]) -> Readiness:
    """Ready, still waiting (and on what), or failed for a reason only a person can fix:
    no node can place it (Placed=False, Insufficient*) or it is Stalled."""
    generation = agent["metadata"].get("generation", 0)
    observed = (agent.get("status") or {}).get("observedGeneration")
    if observed is None or observed < generation:
        return Readiness(
            "waiting", "Pending", f"waiting for the operator to observe generation {generation}"
        )
    placed = condition(agent, COND_PLACED)
    if placed and placed.get("status") == "False" and placed.get("reason") in PLACEMENT_FAILURES:
        return Readiness("failed", str(placed["reason"]), str(placed.get("message", "")))
    stalled = condition(agent, c.COND_STALLED)
    if stalled and stalled.get("status") == "True":
        return Readiness("failed", str(stalled.get("reason", "")), str(stalled.get("message", "")))
    ready = condition(agent, c.COND_READY) or {}
    if ready.get("status") == "True":
        return Readiness("ready", str(ready.get("reason", "")), str(ready.get("message", "")))
    return Readiness(
        "waiting",
        str(ready.get("reason", "Pending")),
        str(ready.get("message") or "waiting for the operator"),
    )


def parse_time(stamp: str | None) -> datetime.datetime | None:
    """metav1.Time or MicroTime as an aware datetime."""
    if not stamp:
        return None
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def age(stamp: str | None, now: datetime.datetime | None = None) -> float | None:
    moment = parse_time(stamp)
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
                text += f" {gibibytes(gpu['vram_mib'])}"
            if gpu.get("sharing") not in (None, "none"):
                text += f" ({gpu['sharing']}, {gpu['slots']} slots)"
            parts.append(text)
        return ", ".join(parts)


def gibibytes(mib: int) -> str:
    """MiB for people: '80Gi', '22.5Gi' (one decimal at most)."""
    text = f"{mib / 1024:.1f}".removesuffix(".0")
    return f"{text}Gi"


def lease_by_node(
    leases: list[dict[str, Any]], namespace: str = placement_labels.LEASE_NAMESPACE
) -> dict[str, dict[str, Any]]:
    """The node agent's heartbeat Leases by the Node they speak for: only those the placement
    ledger counts (in the node agent's namespace, named and held for their Node)."""
    found = {}
    for lease in leases:
        node = placement.lease_node(lease, namespace)
        if node:
            found[node] = lease
    return found


def node_view(
    node: dict[str, Any],
    lease: dict[str, Any] | None,
    now: datetime.datetime,
    max_gpus: int = placement.DEFAULT_MAX_GPUS,
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
    read = placement.node_from_object(node, now, heartbeat, seconds, max_gpus)
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
        memory_mib=_mebibytes(memory),
        gpus=node_gpus(inventory),
        heartbeat_age=(now - heartbeat).total_seconds() if heartbeat else None,
        placement=state,
        labels={k: v for k, v in labels.items() if k.startswith(f"{c.GROUP}/")},
        annotations={k: v for k, v in annotations.items() if k.startswith(f"{c.GROUP}/")},
        simulated=annotations.get(KWOK_NODE_ANNOTATION) == "fake",
    )


def _mebibytes(memory: Any) -> int:
    """A node's allocatable memory in MiB; 0 when absent or unreadable (the placement column
    then says why the node is skipped)."""
    try:
        return int(quantity.parse(memory) / 2**20) if memory else 0
    except ValueError:
        return 0


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

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace

    async def close(self) -> None:
        await self.api.close()

    async def __aenter__(self) -> Fleet:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # -- plumbing --

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        try:
            response = await self.api.call_api(
                path,
                method,
                query_params=query or [],
                body=body,
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                response_types_map={200: "object", 201: "object", 202: "object"},
            )
        except ApiException as error:
            raise _fleet_error(error.status, error.body, error.reason) from error
        return dict(response or {})

    async def _stream(self, path: str, query: list[tuple[str, str]]) -> Any:
        """An open response to read line by line (watches, followed logs)."""
        try:
            response = await self.api.call_api(
                path,
                "GET",
                query_params=query,
                header_params={"Accept": "application/json, */*"},
                auth_settings=["BearerToken"],
                _preload_content=False,
            )
        except ApiException as error:
            raise _fleet_error(error.status, error.body, error.reason) from error
        if response.status >= 300:
            text = await response.text()
            response.release()
            raise _fleet_error(response.status, text, response.reason)
        return response

    def agents_path(self, namespace: str | None = None, name: str | None = None) -> str:
        ns = namespace or self.namespace
        path = f"{AGENTS_PATH}/namespaces/{quote(ns)}/{c.PLURAL}"
        return f"{path}/{quote(name)}" if name else path

    # -- agents --

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        namespace = body["metadata"].get("namespace") or self.namespace
        body = {**body, "metadata": {**body["metadata"], "namespace": namespace}}
        return await self.request("POST", self.agents_path(namespace), body=body)

    async def get(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        return await self.request("GET", self.agents_path(namespace, name))

    async def list_agents(
        self, namespace: str | None = None, all_namespaces: bool = False
    ) -> list[dict[str, Any]]:
        path = f"{AGENTS_PATH}/{c.PLURAL}" if all_namespaces else self.agents_path(namespace)
        items = (await self.request("GET", path)).get("items") or []
        return sorted(
            items, key=lambda a: (a["metadata"].get("namespace", ""), a["metadata"]["name"])
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
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": cascade,
        }
        if uid:
            body["preconditions"] = {"uid": uid}
        await self.request("DELETE", self.agents_path(namespace, name), body=body)

    async def scale(self, name: str, replicas: int, namespace: str | None = None) -> dict[str, Any]:
        """Through the scale subresource, exactly as `kubectl scale aia/<name>` does."""
        return await self.request(
            "PATCH",
            self.agents_path(namespace, name) + "/scale",
            body={"spec": {"replicas": replicas}},
            content_type="application/merge-patch+json",
        )

    async def watch_agent(
        self, name: str, namespace: str | None = None
    ) -> AsyncIterator[dict[str, Any] | None]:
        """The agent now and after every change; None once it is gone. Never ends by itself:
        wrap it in a timeout."""
        ns = namespace or self.namespace
        while True:
            listing = await self.request(
                "GET", self.agents_path(ns), query=[("fieldSelector", f"metadata.name={name}")]
            )
            items = listing.get("items") or []
            yield items[0] if items else None
            version = listing["metadata"]["resourceVersion"]
            query = [
                ("watch", "true"),
                ("fieldSelector", f"metadata.name={name}"),
                ("resourceVersion", version),
                ("allowWatchBookmarks", "false"),
                ("timeoutSeconds", "60"),
            ]
            response = await self._stream(self.agents_path(ns), query)
            try:
                async for line in response.content:
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        break  # e.g. 410 Gone: list again
                    if event.get("type") == "DELETED":
                        yield None
                    elif event.get("type") in ("ADDED", "MODIFIED"):
                        yield event["object"]
            finally:
                response.release()

    async def wait_ready(
        self,
        name: str,
        within: float,
        namespace: str | None = None,
        progress: Callable[[Readiness], None] | None = None,
    ) -> Readiness:
        """Follow the agent until it is Ready or failed; on timeout, the last state seen
        (state "waiting"). A deleted agent is failed with reason Deleted."""
        last = Readiness("waiting", "Pending", "waiting for the operator")
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
        path = f"/api/v1/namespaces/{quote(namespace or self.namespace)}/pods"
        items = (await self.request("GET", path, query=[("labelSelector", selector)]))["items"]
        return sorted(
            items or [],
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
        path = f"/api/v1/namespaces/{quote(meta['namespace'])}/pods/{quote(meta['name'])}/log"
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
            response = await self._stream(path, query)
        except FleetError as error:
            raise await self._no_logs_reason(pod, error) from error
        try:
            async for raw in response.content:
                yield raw.decode(errors="replace").rstrip("\n")
        finally:
            response.release()

    async def _no_logs_reason(self, pod: dict[str, Any], error: FleetError) -> Exception:
        """Why a Pod that exists has no logs. The API server answers 404 when the node
        serves none (a simulated kwok node has no kubelet); other errors stay errors."""
        if not error.not_found:
            return error
        name, node_name = pod["metadata"]["name"], pod["spec"]["nodeName"]
        try:
            node = await self.request("GET", f"/api/v1/nodes/{quote(node_name)}")
        except FleetError:
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
        return sorted(
            (await self.request("GET", "/api/v1/nodes")).get("items") or [],
            key=lambda n: n["metadata"]["name"],
        )

    async def all_pods(self) -> list[dict[str, Any]]:
        """Every Pod that holds resources (not finished), for the GPU ledger."""
        query = [("fieldSelector", "status.phase!=Succeeded,status.phase!=Failed")]
        return list((await self.request("GET", "/api/v1/pods", query=query)).get("items") or [])

    async def node_leases(self) -> list[dict[str, Any]]:
        """The node agent's heartbeat Leases ([] where there are none, or when they may not
        be read: a heartbeat then shows as unknown, never as an error)."""
        path = f"/apis/coordination.k8s.io/v1/namespaces/{placement_labels.LEASE_NAMESPACE}/leases"
        try:
            return list((await self.request("GET", path)).get("items") or [])
        except FleetError as error:
            if error.status in (403, 404):
                return []
            raise

    async def node_views(self, max_gpus: int = placement.DEFAULT_MAX_GPUS) -> list[NodeView]:
        """`max_gpus`: the operator's --max-gpus-per-node (a node claiming more is shown
        ineligible with the reason, as the operator sees it)."""
        nodes, leases = await asyncio.gather(self.nodes(), self.node_leases())
        now = datetime.datetime.now(datetime.UTC)
        by_node = lease_by_node(leases)
        return [
            node_view(node, by_node.get(node["metadata"]["name"]), now, max_gpus) for node in nodes
        ]

    async def gpu_table(self, max_gpus: int = placement.DEFAULT_MAX_GPUS) -> list[placement.GPURow]:
        """Per GPU: total, committed and free VRAM and its agents, from the placement ledger
        rebuilt from the Pods as the operator counts them: decisions of the Pods its
        Deployments made, and what every other bound Pod requests."""
        nodes, pods, leases, trusted = await asyncio.gather(
            self.nodes(), self.all_pods(), self.node_leases(), self.operator_pods()
        )
        now = datetime.datetime.now(datetime.UTC)
        inventory = placement.Inventory.of(nodes, now, leases, max_gpus)
        return placement.gpu_table(inventory, placement.Ledger.from_pods(pods, trusted))

    async def operator_pods(self) -> Callable[[dict[str, Any]], bool]:
        """Which Pods the operator made for an agent (placement.owners), from the GPU
        agents' ReplicaSets, the operator's Deployments and the AIAgents. Whoever may not
        list those sees every agent Pod's decision believed, as before the owner check."""
        selector = [("labelSelector", f"{c.LABEL_GPU}=true")]
        ours = [("labelSelector", f"{c.LABEL_MANAGED_BY}={c.MANAGED_BY}")]
        try:
            replicasets, deployments, agents = await asyncio.gather(
                self.request("GET", "/apis/apps/v1/replicasets", query=selector),
                self.request("GET", "/apis/apps/v1/deployments", query=ours),
                self.request("GET", f"{AGENTS_PATH}/{c.PLURAL}"),
            )
        except FleetError as error:
            if error.status != 403:
                raise
            return lambda pod: True
        return placement.trusted_pods(
            replicasets.get("items") or [],
            deployments.get("items") or [],
            agents.get("items") or [],
        )

    # -- who is asking (for the HTTP API) --

    async def review_token(self, token: str) -> dict[str, Any] | None:
        """The user a bearer token belongs to (TokenReview), or None if it is not valid."""
        review = await self.request(
            "POST",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            body={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "spec": {"token": token},
            },
        )
        status = review.get("status") or {}
        return dict(status["user"]) if status.get("authenticated") else None

    async def may(self, user: dict[str, Any], check: Access) -> bool:
        """Would the API server let this user do this (SubjectAccessReview)?"""
        attributes: dict[str, Any] = {"verb": check.verb, "resource": check.resource}
        if check.group:
            attributes["group"] = check.group
        if check.namespace:
            attributes["namespace"] = check.namespace
        if check.name:
            attributes["name"] = check.name
        review = await self.request(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            body={
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": user.get("username"),
                    "uid": user.get("uid"),
                    "groups": user.get("groups") or [],
                    "extra": user.get("extra") or {},
                    "resourceAttributes": attributes,
                },
            },
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


def _fleet_error(status: int, body: Any, reason: Any) -> FleetError:
    """The API server's own message from its metav1.Status body."""
    text = body.decode() if isinstance(body, bytes) else body
    with contextlib.suppress(TypeError, ValueError):
        parsed = json.loads(text or "")
        if isinstance(parsed, dict) and parsed.get("message"):
            return FleetError(status, str(parsed["message"]), str(parsed.get("reason", "")))
    return FleetError(status, str(text or reason or f"HTTP {status}"))
