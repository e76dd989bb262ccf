"""The benchmark fleet: AIAgent manifests, the baseline's objects, and a watch that records
when each agent's status says what.

Times are the harness's monotonic clock at the moment a watch event arrived, so a scenario's
duration is measured from the same clock it started on.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentfleet.api import constants as c
from agentfleet.api.models import AgentType, AIAgent
from agentfleet.render.children import desired_objects
from agentfleet.render.context import RenderContext
from benchmarks.kube import BenchError, ClusterAccess

log = logging.getLogger(__name__)
Log = Callable[[str], None]

# The rollout plan's types, in the models' order (custom is anything else).
AGENT_TYPES = tuple(t.value for t in AgentType if t is not AgentType.CUSTOM)
RUN_LABEL = f"{c.GROUP}/bench-run"
IMAGE = "registry.example.com/agentfleet-bench/agent-{type}:{tag}"
CHILD_COLLECTIONS = {
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Service": "/api/v1/namespaces/{ns}/services",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
}


def agents_path(namespace: str) -> str:
    return f"/apis/{c.GROUP}/{c.VERSION}/namespaces/{namespace}/{c.PLURAL}"


def agent_manifest(
    name: str, namespace: str, index: int, labels: dict[str, str], tag: str
) -> dict[str, Any]:
    """One replica, no GPU, no mesh or autoscaling: the plain agent the fleet is made of."""
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
        },
    }


def rendered_children(agent: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects the operator renders for an agent, with the render settings of an operator
    started with default flags (as the harness starts it). The one call into its renderers,
    so a change of their signature is a change here only."""
    return desired_objects(AIAgent.from_body(agent), RenderContext())


def baseline_objects(agents: Iterable[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """What the operator would apply for these agents, in another namespace and without
    ownerReferences (their owners do not exist there, and the garbage collector would
    delete them)."""
    objects = []
    for agent in agents:
        moved = copy.deepcopy(agent)
        moved["metadata"]["namespace"] = namespace
        for obj in rendered_children(moved):
            obj["metadata"].pop("ownerReferences", None)
            objects.append(obj)
    return objects


def write_chunks(
    objects: Sequence[dict[str, Any]], directory: Path, stem: str, parts: int
) -> list[Path]:
    """Split `objects` (in order) over `parts` multi-document files for parallel applies.
    Each document is JSON, which is YAML, and much faster to write."""
    directory.mkdir(parents=True, exist_ok=True)
    size = max(math.ceil(len(objects) / max(parts, 1)), 1)
    paths = []
    for number, start in enumerate(range(0, len(objects), size)):
        path = directory / f"{stem}-{number}.yaml"
        path.write_text("\n---\n".join(json.dumps(o) for o in objects[start : start + size]))
        paths.append(path)
    return paths


@dataclass
class AgentState:
    """One agent as the watch last showed it, and when its status first said what."""

    uid: str
    generation: int
    first_status_at: float | None = None  # any condition at all (Reconciling at least)
    # generation -> first time status.observedGeneration was it with a Ready condition present
    converged_at: dict[int, float] = field(default_factory=dict)
    # generation -> first time Ready was True for it
    ready_at: dict[int, float] = field(default_factory=dict)

    def observe(self, body: dict[str, Any], now: float) -> None:
        self.uid = body["metadata"]["uid"]
        self.generation = body["metadata"].get("generation", 0)
        status = body.get("status") or {}
        conditions = {cond.get("type"): cond for cond in status.get("conditions") or []}
        if conditions and self.first_status_at is None:
            self.first_status_at = now
        if status.get("observedGeneration") != self.generation or c.COND_READY not in conditions:
            return
        self.converged_at.setdefault(self.generation, now)
        if conditions[c.COND_READY].get("status") == "True":
            self.ready_at.setdefault(self.generation, now)


class AgentTracker:
    """List, then watch, the AIAgents of one namespace in a background thread."""

    def __init__(self, access: ClusterAccess, namespace: str, progress: Log) -> None:
        self.access = access
        self.namespace = namespace
        self.progress = progress
        self.agents: dict[str, AgentState] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="agent-watch", daemon=True)
        self._watch: Any = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._watch is not None:
            self._watch.stop()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        from kubernetes import client, watch
        from kubernetes.client.exceptions import ApiException

        api: Any = client.CustomObjectsApi(self.access.api)
        resource_version = ""
        while not self._stopped.is_set():
            try:
                if not resource_version:
                    listed = api.list_namespaced_custom_object(
                        c.GROUP, c.VERSION, self.namespace, c.PLURAL
                    )
                    now = time.monotonic()
                    with self._lock:
                        for body in listed["items"]:
                            self._observe("ADDED", body, now)
                    resource_version = listed["metadata"]["resourceVersion"]
                self._watch = watch.Watch()  # type: ignore[no-untyped-call]
                for event in self._watch.stream(
                    api.list_namespaced_custom_object,
                    c.GROUP,
                    c.VERSION,
                    self.namespace,
                    c.PLURAL,
                    resource_version=resource_version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=30,
                ):
                    with self._lock:
                        self._observe(event["type"], event["raw_object"], time.monotonic())
                resource_version = self._watch.resource_version or resource_version
            except ApiException as error:
                if error.status != 410:  # 410 Gone: too old to resume, list again
                    log.warning("agent watch failed: %s", error)
                    time.sleep(0.5)
                resource_version = ""
            except Exception as error:  # a dead watch must fail the wait, not hang it
                self._error = error
                return

    def _observe(self, kind: str, body: dict[str, Any], now: float) -> None:
        if kind == "DELETED":
            self.agents.pop(body["metadata"]["name"], None)
        elif kind in ("ADDED", "MODIFIED"):  # not BOOKMARK: it carries a resourceVersion only
            meta = body["metadata"]
            state = self.agents.setdefault(meta["name"], AgentState(meta["uid"], 0))
            state.observe(body, now)

    def snapshot(self) -> dict[str, AgentState]:
        with self._lock:
            return copy.deepcopy(self.agents)

    def count(self, names: Sequence[str], moment: Callable[[str, AgentState], float | None]) -> int:
        """How many of the named agents `moment` has a time for (cheap enough to poll)."""
        with self._lock:
            return sum(
                1
                for name in names
                if (state := self.agents.get(name)) and moment(name, state) is not None
            )

    def when_all(
        self,
        names: Sequence[str],
        moment: Callable[[str, AgentState], float | None],
        what: str,
        timeout: float,
    ) -> float:
        """Wait until `moment` has a time for every named agent; return the latest one."""
        deadline = time.monotonic() + timeout
        next_report = time.monotonic() + 10
        while True:
            if self._error is not None:
                raise BenchError(f"the AIAgent watch failed: {self._error}")
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
            time.sleep(0.2)


def converged(name: str, state: AgentState) -> float | None:
    return state.converged_at.get(state.generation)


def ready(name: str, state: AgentState) -> float | None:
    return state.ready_at.get(state.generation)


@dataclass
class ChildAudit:
    """Every child of the namespace's agents, checked against the agents that exist."""

    agents: int
    children: int
    missing: list[str]  # "<Kind>/<agent>": a wanted child that does not exist
    orphans: list[str]  # a child whose controlling owner is no existing agent
    duplicates: list[str]  # an agent controlling two children of one kind

    def as_dict(self) -> dict[str, Any]:
        return {
            "agents": self.agents,
            "children": self.children,
            "missing": self.missing[:20],
            "orphans": self.orphans[:20],
            "duplicates": self.duplicates[:20],
            "missing_count": len(self.missing),
            "orphan_count": len(self.orphans),
            "duplicate_count": len(self.duplicates),
        }


def audit_children(
    access: ClusterAccess, namespace: str, names: Iterable[str] | None = None, cached: bool = False
) -> ChildAudit:
    """Check that each (named) agent has exactly one ServiceAccount, Service and Deployment
    that it controls, and that every object the operator labels as its own in the namespace
    has an existing controlling AIAgent."""
    agents = {
        a["metadata"]["uid"]: a["metadata"]["name"]
        for a in access.list_items(agents_path(namespace), cached=cached)
    }
    wanted = set(agents.values()) if names is None else set(names)
    selector = f"{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"
    missing, orphans, duplicates, total = [], [], [], 0
    for kind, path in CHILD_COLLECTIONS.items():
        owned: dict[str, int] = {}
        for child in access.list_items(path.format(ns=namespace), selector, cached=cached):
            total += 1
            refs = child["metadata"].get("ownerReferences") or []
            owner = next((r for r in refs if r.get("controller") and r.get("kind") == c.KIND), None)
            if owner is None or owner.get("uid") not in agents:
                orphans.append(f"{kind}/{child['metadata']['name']}")
                continue
            name = agents[owner["uid"]]
            owned[name] = owned.get(name, 0) + 1
        missing += [f"{kind}/{name}" for name in sorted(wanted) if name not in owned]
        duplicates += [f"{kind}/{name}" for name, count in sorted(owned.items()) if count > 1]
    return ChildAudit(len(wanted), total, missing, orphans, duplicates)
