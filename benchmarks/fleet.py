"""The benchmark fleets: AIAgent manifests, the objects the renderers want for them, and the
watches that record when each agent's status and each child's content said what.

Times are the harness's monotonic clock at the moment a watch event arrived, so a window's
duration is measured from the same clock it started on.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentfleet.api import constants as c
from agentfleet.api.config import RenderConfig
from agentfleet.api.models import AgentType, AIAgent
from agentfleet.controllers.cache import peer_of
from agentfleet.controllers.drift import stamp
from agentfleet.render.children import CHILD_KINDS, ChildKind, desired_objects
from agentfleet.render.context import RenderContext
from benchmarks.kube import BenchError, ClusterAccess
from benchmarks.plain import BY_KIND, content_digest, owner_placeholder
from benchmarks.watch import Watches

Log = Callable[[str], None]

# The rollout plan's types, in the models' order (custom is anything else).
AGENT_TYPES = tuple(t.value for t in AgentType if t is not AgentType.CUSTOM)
RUN_LABEL = f"{c.GROUP}/bench-run"
IMAGE = "registry.example.com/agentfleet-bench/agent-{type}:{tag}"
# What each fleet's agents ask for besides one replica of a small image.
FLAVOURS: dict[str, dict[str, Any]] = {
    "plain": {},
    # A slice of a time-sliced GPU: four fit one 80 GiB GPU by VRAM and by slots (nodes.py).
    "gpu": {"gpu": {"count": 1, "vram": "20Gi", "sharing": "shared"}},
    # Ambient, callers by type, a timeout: a namespace waypoint and the default-deny policy
    # that the mesh agents of the namespace share.
    "mesh": {
        "mesh": {
            "mode": "ambient",
            "allowFrom": [{"agentType": "orchestrator"}],
            "traffic": {"timeout": "30s"},
        }
    },
    # A cpu trigger (KEDA takes it without any metrics source) and a small range.
    "keda": {
        "autoscaling": {
            "minReplicas": 1,
            "maxReplicas": 3,
            "triggers": [{"cpu": {"utilization": 75}}],
        }
    },
}


def agents_path(namespace: str) -> str:
    return f"/apis/{c.GROUP}/{c.VERSION}/namespaces/{namespace}/{c.PLURAL}"


def collection_path(row: ChildKind, namespace: str) -> str:
    base = "/api/v1" if row.api_version == "v1" else f"/apis/{row.api_version}"
    return f"{base}/namespaces/{namespace}/{row.plural}"


def agent_manifest(
    name: str, namespace: str, index: int, labels: dict[str, str], tag: str, flavour: str = "plain"
) -> dict[str, Any]:
    """One replica of a small image and what the fleet's flavour adds."""
    agent_type = AGENT_TYPES[index % len(AGENT_TYPES)]
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "agentType": agent_type,
            "image": IMAGE.format(type=agent_type, tag=tag),
            "replicas": 1,
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
            **copy.deepcopy(FLAVOURS[flavour]),
        },
    }


def desired_children(
    agents: Sequence[dict[str, Any]], kinds: Iterable[str] | None = None
) -> dict[str, dict[str, Any]]:
    """What the operator, started with default flags, applies for these agents (bodies with
    their uids; all of one namespace): every object the renderers produce, stamped with
    its applied-hash exactly as the operator stamps it, by API path. Objects the agents of
    a namespace share are rendered by each of them and are the same. `kinds`: only the
    kinds the API server serves (the operator skips the others)."""
    from benchmarks.plain import object_path

    peers = tuple(sorted((peer_of(body) for body in agents), key=lambda p: p.name))
    context = RenderContext(RenderConfig(), peers)
    wanted = {row.kind for row in CHILD_KINDS} if kinds is None else set(kinds)
    objects: dict[str, dict[str, Any]] = {}
    for body in agents:
        for obj in desired_objects(AIAgent.from_body(body), context):
            if obj["kind"] in wanted:
                objects[object_path(obj)] = stamp(obj)
    return objects


def baseline_children(agents: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same objects for agents that do not exist yet: their owner uids are placeholders
    that plain.Prepared.with_owners replaces once the agents are created."""
    bodies = []
    for agent in agents:
        body = copy.deepcopy(agent)
        body["metadata"]["uid"] = owner_placeholder(agent["metadata"]["name"])
        bodies.append(body)
    return list(desired_children(bodies).values())


# --- what the watches saw --------------------------------------------------------------------


@dataclass
class AgentState:
    """One agent as the watch last showed it, and when its status first said what."""

    uid: str
    generation: int
    first_status_at: float | None = None  # any condition at all (Reconciling at least)
    # generation -> first time Ready was True with status.observedGeneration at it
    ready_at: dict[int, float] = field(default_factory=dict)

    def observe(self, body: dict[str, Any], now: float) -> None:
        self.uid = body["metadata"]["uid"]
        self.generation = body["metadata"].get("generation", 0)
        status = body.get("status") or {}
        conditions = {cond.get("type"): cond for cond in status.get("conditions") or []}
        if conditions and self.first_status_at is None:
            self.first_status_at = now
        ready = conditions.get(c.COND_READY) or {}
        # Ready for *this* generation: the status's own observedGeneration, and the
        # condition's where it carries one.
        if (
            status.get("observedGeneration") == self.generation
            and ready.get("status") == "True"
            and ready.get("observedGeneration", self.generation) == self.generation
        ):
            self.ready_at.setdefault(self.generation, now)


Moment = Callable[[str, AgentState], float | None]


def ready(name: str, state: AgentState) -> float | None:
    """Ready=True for the agent's current generation."""
    return state.ready_at.get(state.generation)


class AgentTracker:
    """The AIAgents of one namespace, as their watch shows them."""

    def __init__(self, watches: Watches, namespace: str, progress: Log) -> None:
        self.watches = watches
        self.namespace = namespace
        self.progress = progress
        self.agents: dict[str, AgentState] = {}
        self._lock = threading.Lock()
        self._handle: int | None = None

    def start(self) -> None:
        self._handle = self.watches.add(agents_path(self.namespace), self._observe)

    def stop(self) -> None:
        if self._handle is not None:
            self.watches.remove(self._handle)

    def _observe(self, kind: str, body: dict[str, Any], now: float) -> None:
        meta = body["metadata"]
        with self._lock:
            if kind == "DELETED":
                self.agents.pop(meta["name"], None)
                return
            state = self.agents.setdefault(meta["name"], AgentState(meta["uid"], 0))
            state.observe(body, now)

    def snapshot(self) -> dict[str, AgentState]:
        with self._lock:
            return copy.deepcopy(self.agents)

    def count(self, names: Sequence[str], moment: Moment) -> int:
        """How many of the named agents `moment` has a time for (cheap enough to poll)."""
        with self._lock:
            return sum(
                1
                for name in names
                if (state := self.agents.get(name)) and moment(name, state) is not None
            )

    def when_all(self, names: Sequence[str], moment: Moment, what: str, timeout: float) -> float:
        """Wait until `moment` has a time for every named agent; return the latest one."""
        deadline = time.monotonic() + timeout
        next_report = time.monotonic() + 10
        while True:
            self.watches.check()
            with self._lock:
                times = [
                    moment(name, state) if (state := self.agents.get(name)) else None
                    for name in names
                ]
            done = [t for t in times if t is not None]
            if len(done) == len(names):
                return max(done, default=time.monotonic())
            now = time.monotonic()
            if now > deadline:
                raise BenchError(
                    f"timed out after {timeout:.0f} s waiting for {what}: "
                    f"{len(done)} of {len(names)}"
                )
            if now > next_report:
                self.progress(f"  {what}: {len(done)} of {len(names)}")
                next_report = now + 10
            time.sleep(0.5)


@dataclass
class ChildState:
    digest: str  # plain.content_digest of the object as last seen
    since: float  # when the object first showed this content
    owners: int  # ownerReferences
    shared: bool  # no controller: an object the agents of a namespace share
    managed: bool  # labelled as the operator's (app.kubernetes.io/managed-by)
    size: int = 0  # bytes of its JSON as last seen, for shared objects (they may grow)
    # Deployments: generation -> first time every replica was updated and available
    rolled_out_at: dict[int, float] = field(default_factory=dict)
    generation: int = 0
    image: str = ""


def rolled_out(body: dict[str, Any]) -> bool:
    """A Deployment whose controller saw its spec and has exactly its replicas, all of
    them updated and available (what `kubectl rollout status` waits for)."""
    spec, status = body.get("spec") or {}, body.get("status") or {}
    wanted = spec.get("replicas", 1)
    return bool(
        status.get("observedGeneration", 0) >= body["metadata"].get("generation", 0)
        and status.get("updatedReplicas", 0) >= wanted
        and status.get("availableReplicas", 0) >= wanted
        and status.get("replicas", 0) <= wanted
    )


class ChildTracker:
    """Every object of the operator's kinds in one namespace: its content digest and since
    when it has had it, and when each Deployment generation was rolled out."""

    def __init__(self, watches: Watches, access: ClusterAccess, namespace: str) -> None:
        self.watches = watches
        self.namespace = namespace
        self.kinds = [row for row in CHILD_KINDS if access.served(row.api_version, row.plural)]
        self.objects: dict[str, ChildState] = {}  # API path -> state
        self._lock = threading.Lock()
        self._handles: list[int] = []

    @property
    def served_kinds(self) -> list[str]:
        return [row.kind for row in self.kinds]

    def start(self) -> None:
        for row in self.kinds:
            path = collection_path(row, self.namespace)
            self._handles.append(self.watches.add(path, self._observer(path)))

    def stop(self) -> None:
        for handle in self._handles:
            self.watches.remove(handle)

    def _observer(self, collection: str) -> Callable[[str, dict[str, Any], float], None]:
        def observe(kind: str, body: dict[str, Any], now: float) -> None:
            meta = body["metadata"]
            path = f"{collection}/{meta['name']}"
            with self._lock:
                if kind == "DELETED":
                    self.objects.pop(path, None)
                    return
                digest = content_digest(body)
                refs = meta.get("ownerReferences") or []
                state = self.objects.get(path)
                if state is None or state.digest != digest:
                    state = self.objects[path] = ChildState(
                        digest,
                        now,
                        len(refs),
                        bool(refs) and not any(ref.get("controller") for ref in refs),
                        (meta.get("labels") or {}).get(c.LABEL_MANAGED_BY) == c.MANAGED_BY,
                        rolled_out_at=state.rolled_out_at if state else {},
                    )
                    if state.shared:
                        state.size = len(json.dumps(body, separators=(",", ":")))
                if "/deployments/" in path:
                    state.generation = meta.get("generation", 0)
                    containers = body["spec"]["template"]["spec"].get("containers") or [{}]
                    state.image = containers[0].get("image", "")
                    if rolled_out(body):
                        state.rolled_out_at.setdefault(state.generation, now)

        return observe

    def snapshot(self) -> dict[str, ChildState]:
        with self._lock:
            return copy.deepcopy(self.objects)

    def when_rolled_out(
        self, names: Sequence[str], image: dict[str, str] | None, timeout: float, progress: Log
    ) -> float:
        """Wait until each named Deployment (with `image`, when given) has its current
        generation rolled out; the latest moment."""
        deadline = time.monotonic() + timeout
        next_report = time.monotonic() + 10
        collection = collection_path(BY_KIND["Deployment"], self.namespace)
        while True:
            self.watches.check()
            times = []
            with self._lock:  # no copies: this runs every half second beside the operator
                for name in names:
                    state = self.objects.get(f"{collection}/{name}")
                    if state is None or (image and state.image != image[name]):
                        continue
                    if (at := state.rolled_out_at.get(state.generation)) is not None:
                        times.append(at)
            if len(times) == len(names):
                return max(times, default=time.monotonic())
            now = time.monotonic()
            if now > deadline:
                raise BenchError(f"{len(names) - len(times)} Deployments not rolled out")
            if now > next_report:
                progress(f"  Deployments rolled out: {len(times)} of {len(names)}")
                next_report = now + 10
            time.sleep(0.5)
