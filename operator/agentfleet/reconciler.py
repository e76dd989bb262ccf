"""One reconcile of one AIAgent: parse → render → apply what differs → prune → status.

Level-triggered: it reads the latest state from the watch caches (never from an event's
payload), so reconciling the same key twice in a row is cheap and the second time writes
nothing. It knows nothing of kopf; handlers.py feeds it keys and caches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from agentfleet import drift
from agentfleet.constants import Reason
from agentfleet.kube import Ref, Rejected
from agentfleet.models import AIAgent
from agentfleet.render import desired_objects
from agentfleet.status import Problem, desired_status, invalid_spec_status

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name) of an AIAgent
CHILD_KINDS = ("ServiceAccount", "Service", "Deployment")


class Cache(Protocol):
    """Read-only view of the watched objects."""

    def agent(self, key: Key) -> dict[str, Any] | None: ...

    def owned(self, kind: str, key: Key) -> list[dict[str, Any]]: ...

    def namespace_terminating(self, namespace: str) -> bool: ...


class Writer(Protocol):
    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    async def patch_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]: ...

    async def repair(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    async def delete(self, ref: Ref, uid: str) -> None: ...

    async def post_event(self, body: dict[str, Any], reason: str, message: str) -> None: ...


@dataclass
class Reconciler:
    """Reconciles one agent at a time; `reconcile` returns seconds until it wants to run
    again (a deferred status write), or None."""

    kube: Writer
    cache: Cache
    cluster_domain: str = "cluster.local"
    # An agent's status is written at most once per window, so a rollout that moves replica
    # by replica costs one status write per window, not one per replica. A new agent's first
    # status waits one window too; problems (Stalled) are written at once.
    status_window: float = 1.0
    clock: Callable[[], float] = time.monotonic
    # Our own apply responses, kept until the watch cache shows that version or a newer one.
    # Without them a reconcile that runs before the watch event arrives sees a stale child
    # and applies it again.
    applied: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    # Per agent: no status write before this time (clock seconds).
    status_not_before: dict[Key, float] = field(default_factory=dict)

    async def reconcile(self, key: Key) -> float | None:
        body = self.cache.agent(key)
        if (
            body is None
            or body["metadata"].get("deletionTimestamp")
            or self.cache.namespace_terminating(key[0])
        ):
            # Gone or going: ownerReferences let the garbage collector remove the children,
            # and status or re-creates written meanwhile would be wasted writes.
            self._forget(key)
            return None
        previous = body.get("status") or {}
        try:
            agent = AIAgent.from_body(body)
        except ValidationError as error:
            generation = body["metadata"].get("generation", 0)
            status = invalid_spec_status(generation, describe(error), previous)
            return await self._write_status(key, body, status, urgent=True)

        problem: Problem | None = None
        deployment = self._owned(agent, "Deployment", agent.metadata.name)
        try:
            fresh = await self._apply_children(agent)
            deployment = fresh.get("Deployment", deployment)
        except Rejected as rejected:
            if rejected.namespace_terminating:
                return None  # the namespace and the agent are going away; more writes are waste
            problem = Problem(Reason.APPLY_FAILED, str(rejected))
        status = desired_status(agent, deployment, problem, previous, self.cluster_domain)
        return await self._write_status(key, body, status, urgent=problem is not None)

    def _forget(self, key: Key) -> None:
        self.status_not_before.pop(key, None)
        for kind in CHILD_KINDS:
            self.applied.pop((kind, *key), None)

    async def _apply_children(self, agent: AIAgent) -> dict[str, dict[str, Any]]:
        """Apply every child that is missing, outdated or drifted; prune the ones not wanted.
        Returns the newest copy of each desired child (the apply response, or the cache)."""
        newest: dict[str, dict[str, Any]] = {}
        wanted: set[tuple[str, str]] = set()
        for obj in map(drift.stamp, desired_objects(agent)):
            kind, name = obj["kind"], obj["metadata"]["name"]
            wanted.add((kind, name))
            observed = self._owned(agent, kind, name)
            if observed is not None and drift.is_current(obj, observed):
                newest[kind] = observed
                continue
            log.info("applying %s %s/%s", kind, agent.metadata.namespace, name)
            newest[kind] = await self._apply(obj, drifted=observed is not None)
            self.applied[(kind, agent.metadata.namespace, name)] = newest[kind]
        key = (agent.metadata.namespace, agent.metadata.name)
        for kind in CHILD_KINDS:
            for child in self.cache.owned(kind, key):
                if (kind, child["metadata"]["name"]) not in wanted:
                    log.info("pruning %s %s/%s", kind, key[0], child["metadata"]["name"])
                    await self.kube.delete(Ref.of(child), child["metadata"]["uid"])
        return newest

    async def _apply(self, obj: dict[str, Any], drifted: bool) -> dict[str, Any]:
        try:
            return await self.kube.apply(obj)
        except Rejected as rejected:
            if not (drifted and rejected.status == 422):
                raise
            # Someone else's edit left entries that our apply cannot remove (and that now
            # clash with ours); a merge patch replaces those lists. If the object itself is
            # invalid this is refused too, and the agent stalls with the server's message.
            log.warning(
                "repairing %s %s/%s: %s",
                obj["kind"],
                obj["metadata"]["namespace"],
                obj["metadata"]["name"],
                rejected.message,
            )
            return await self.kube.repair(obj)

    def observe_child(self, event_type: str, child: dict[str, Any]) -> None:
        """Called for every watch event of a child: once the cache holds our applied version
        (or a newer one), or the child is gone, our remembered copy is no longer needed."""
        meta = child["metadata"]
        key = (child["kind"], meta["namespace"], meta["name"])
        ours = self.applied.get(key)
        if ours is not None and (event_type == "DELETED" or not _older(child, ours)):
            del self.applied[key]

    def _owned(self, agent: AIAgent, kind: str, name: str) -> dict[str, Any] | None:
        """The newest copy of a child: the watch cache's, or our last apply response while
        the cache has not caught up with it yet."""
        key = (agent.metadata.namespace, agent.metadata.name)
        cached = next(
            (o for o in self.cache.owned(kind, key) if o["metadata"]["name"] == name), None
        )
        ours = self.applied.get((kind, agent.metadata.namespace, name))
        if ours is None or (cached is not None and not _older(cached, ours)):
            return cached
        return ours

    async def _write_status(
        self, key: Key, body: dict[str, Any], status: dict[str, Any], urgent: bool
    ) -> float | None:
        """Patch status if it changed; returns the delay if the write had to wait."""
        previous = body.get("status") or {}
        if status == previous:
            return None
        now = self.clock()
        if not previous:  # a new agent: waiting a moment usually makes its first status final
            self.status_not_before.setdefault(key, now + self.status_window)
        not_before = self.status_not_before.get(key, now)
        if not urgent and not_before > now:
            return not_before - now  # coalesce: the newest status is written then
        meta = body["metadata"]
        if log.isEnabledFor(logging.DEBUG):
            changed = sorted(k for k in {*status, *previous} if status.get(k) != previous.get(k))
            log.debug(
                "status of %s/%s changed: %s",
                meta["namespace"],
                meta["name"],
                {k: (previous.get(k), status.get(k)) for k in changed},
            )
        await self.kube.patch_status(meta["namespace"], meta["name"], status)
        self.status_not_before[key] = now + self.status_window
        stalled = _condition(status, "Stalled")
        if stalled.get("status") == "True" and _condition(previous, "Stalled") != stalled:
            try:
                await self.kube.post_event(body, stalled["reason"], stalled["message"])
            except Exception:  # an Event is a courtesy; the condition already says it all
                log.warning(
                    "could not post the %s event for %s/%s",
                    stalled["reason"],
                    meta["namespace"],
                    meta["name"],
                    exc_info=True,
                )
        return None


def _older(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Is `a` an older version of the object than `b`? resourceVersions are etcd revisions;
    Kubernetes calls them opaque, so anything unparsable counts as "not older"."""
    try:
        return int(a["metadata"]["resourceVersion"]) < int(b["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return False


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), {})


def describe(error: ValidationError) -> str:
    """pydantic's errors as one sentence naming spec fields, e.g. 'spec.gpu.vram: ...'."""
    parts = []
    for item in error.errors()[:3]:
        where = ".".join(str(p) for p in item["loc"])
        parts.append(f"{where}: {item['msg']}")
    more = len(error.errors()) - 3
    return "invalid spec: " + "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
