"""One reconcile of one AIAgent: parse → check policy → render → apply what differs → prune →
status.

Level-triggered: it reads the latest state from the watch caches (never from an event's
payload), so reconciling the same key twice in a row is cheap and the second time writes
nothing. It knows nothing of kopf; handlers.py feeds it keys and caches. Every kind it
touches comes from the table in children.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from pydantic import ValidationError

from agentfleet.api import constants as c
from agentfleet.api.config import OperatorConfig
from agentfleet.api.constants import Reason
from agentfleet.api.models import AIAgent
from agentfleet.api.quantity import format_mib
from agentfleet.controllers import drift, policy
from agentfleet.controllers.cache import (
    AgentRecord,
    ChildRecord,
    Key,
    controlled_by,
    foreign_controller,
    pack,
    unpack,
)
from agentfleet.controllers.placer import AgentPlacement
from agentfleet.controllers.status import (
    FeatureState,
    Placed,
    Problem,
    StatusInputs,
    desired_status,
    invalid_spec_status,
    pending_features,
    queued_status,
    rollout,
    status_from,
    status_patch,
)
from agentfleet.kube.client import ApiError, Ref
from agentfleet.render import gpu, keda
from agentfleet.render.children import CHILD_KINDS, ChildKind
from agentfleet.render.context import LazyPeers, LiveDeployment, Peer, RenderContext

log = logging.getLogger(__name__)

ChildKey = tuple[str, str]  # (kind, name) of a child within its agent's namespace

# Problems a person or the cluster can resolve without a spec change: retried with backoff.
_RETRIED = frozenset({Reason.QUOTA_EXCEEDED, Reason.FORBIDDEN, Reason.CHILD_CONFLICT})


class Cache(Protocol):
    """Read-only view of the watched objects."""

    def agent(self, key: Key) -> AgentRecord | None: ...

    def children(self, kind: str, key: Key) -> list[ChildRecord]: ...

    def namespace_terminating(self, namespace: str) -> bool: ...

    def served(self, row: ChildKind) -> bool: ...

    def peers(self, namespace: str) -> tuple[Peer, ...]: ...


class Writer(Protocol):
    async def apply(
        self,
        obj: dict[str, Any],
        plural: str,
        uid: str | None,
        manager: str = c.FIELD_MANAGER,
        force: bool = True,
    ) -> dict[str, Any]: ...

    async def get(self, ref: Ref, metadata_only: bool = False) -> dict[str, Any] | None: ...

    async def patch(self, ref: Ref, patch: Any, json_patch: bool = False) -> dict[str, Any]: ...

    async def patch_status(
        self,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        resource_version: str | None = None,
    ) -> dict[str, Any]: ...

    async def delete(self, ref: Ref, uid: str) -> None: ...

    async def post_event(
        self, body: dict[str, Any], reason: str, message: str, type_: str = "Warning"
    ) -> None: ...


@dataclass(frozen=True)
class Result:
    """What the controller should do next with this key."""

    requeue_after: float | None = None  # run again then (a deferred status write)
    retry: bool = False  # something a retry can fix went wrong: back off and run again
    gone: bool = False  # the agent no longer exists (or is going): forget the key


class ChildConflict(Exception):
    """An object with a child's name exists and is not controlled by this AIAgent."""


@dataclass
class AgentMemo:
    """What the reconciler remembers of one agent between passes (dropped when it goes)."""

    # Our own apply responses, kept until the watch cache shows that version or a newer
    # one; without them a reconcile that runs before the watch event arrives would see a
    # stale child and apply it again.
    applied: dict[ChildKey, ChildRecord] = field(default_factory=dict)
    # (content digest, applied hash) of each child last found current: an unchanged digest
    # needs no new drift check, so a child whose status alone moved costs no unpacking.
    verified: dict[ChildKey, tuple[str, str]] = field(default_factory=dict)
    status_not_before: float = 0.0
    last_written: float = float("-inf")
    generation_seen: float = 0.0  # when a reconcile first met the current generation
    # The generation whose first status write is being held back one window.
    deferred_generation: int | None = None
    # The resourceVersion our last status write produced (its watch event is our own echo),
    # and the status it wrote.
    written_version: str | None = None
    written: bytes | None = None  # packed: thousands of memos, rarely read
    settled: Settled | None = None


@dataclass(frozen=True)
class Settled:
    """A plain agent (no GPU, mesh or autoscaling: its render depends on its spec alone) whose
    children were all found current at this generation. Until its generation or one of its
    children's content changes, its status is all a reconcile has left to compute, and the
    spec need not be parsed nor the children rendered again."""

    generation: int
    children: frozenset[tuple[str, str, str]]  # (kind, name, content digest)
    inputs: StatusInputs


@dataclass
class Outcome:
    deployment: dict[str, Any] | None = None
    problem: Problem | None = None
    features: dict[str, list[FeatureState]] = field(default_factory=dict)
    stop: bool = False  # the namespace is going away: write nothing more
    wanted: set[ChildKey] = field(default_factory=set)  # every child rendered


@dataclass
class Reconciler:
    kube: Writer
    cache: Cache
    config: OperatorConfig = field(default_factory=OperatorConfig)
    # An agent's status is written at most once per window, so a rollout that moves replica
    # by replica costs one status write per window, not one per replica. A new agent's first
    # status waits one window too; problems (Stalled) are written at once.
    status_window: float = 1.0
    clock: Callable[[], float] = time.monotonic
    memos: dict[Key, AgentMemo] = field(default_factory=dict)
    # Where each GPU agent's replicas were placed (placer.py), when placement is on.
    placements: Callable[[Key], AgentPlacement] | None = None

    async def reconcile(self, key: Key) -> Result:
        record = self.cache.agent(key)
        if record is None or record.deleting or self.cache.namespace_terminating(key[0]):
            # Gone or going: ownerReferences let the garbage collector remove the children,
            # and status or re-creates written meanwhile would be wasted writes.
            self.memos.pop(key, None)
            return Result(gone=True)
        body = record.body()
        previous = body.get("status") or {}
        memo = self.memos.get(key)
        if memo is not None and self._still_settled(key, memo, record.generation):
            assert memo.settled is not None
            deployment = self._current_body(memo, key, "Deployment", key[1])
            status = status_from(memo.settled.inputs, deployment, None, previous)
            return await self._write_status(key, body, status, urgent=False)
        try:
            agent = AIAgent.from_body(body)
        except ValidationError as error:
            status = invalid_spec_status(record.generation, describe(error), previous)
            return await self._write_status(key, body, status, urgent=True)

        memo = self.memos.setdefault(key, AgentMemo())
        refused = policy.violations(agent, self.config.policy)
        if refused:  # change nothing in the cluster; say exactly what is refused
            outcome = Outcome(
                deployment=self._current_body(memo, key, "Deployment", agent.metadata.name),
                problem=Problem(Reason.POLICY_VIOLATION, policy.message(refused)),
            )
        else:
            outcome = await self._converge(agent, self._context(agent, memo), memo)
        if outcome.stop:
            return Result()
        features = [_fold(states) for states in outcome.features.values()]
        features += pending_features(agent, frozenset(outcome.features))
        placed = None
        if self.placements is not None and gpu.wants_gpu(agent.spec.gpu):
            placed = placed_condition(self.placements(key))
        status = desired_status(
            agent,
            outcome.deployment,
            outcome.problem,
            previous,
            self.config.render.cluster_domain,
            features=features,
            placed=placed,
        )
        problem = outcome.problem
        memo.settled = None
        plain = not outcome.features and not features and placed is None and not refused
        if plain and problem is None:
            memo.settled = self._settled(key, memo, agent, outcome.wanted)
        result = await self._write_status(key, body, status, urgent=problem is not None)
        retry = problem is not None and (not problem.stalled or problem.reason in _RETRIED)
        retry = retry or any(not f.ok and f.reason == Reason.RETRYING for f in features)
        return Result(result.requeue_after, retry)

    def _children_now(self, key: Key, memo: AgentMemo) -> frozenset[tuple[str, str, str]]:
        """Every child of the agent as the cache (or our last apply) holds it now."""
        found = set()
        for row in CHILD_KINDS:
            names = {r.name for r in self.cache.children(row.kind, key)}
            names |= {name for kind, name in memo.applied if kind == row.kind}
            for name in names:
                newest = self._newest(memo, key, (row.kind, name))
                if newest is not None:
                    found.add((row.kind, name, newest.digest))
        return frozenset(found)

    def _settled(
        self, key: Key, memo: AgentMemo, agent: AIAgent, wanted: set[ChildKey]
    ) -> Settled | None:
        children = self._children_now(key, memo)
        verified = {(kind, name, digest) for (kind, name), (digest, _) in memo.verified.items()}
        if {(kind, name) for kind, name, _ in children} != wanted or not children <= verified:
            return None  # something is missing, not yet pruned or not found current
        inputs = StatusInputs.of(agent, self.config.render.cluster_domain)
        return Settled(agent.metadata.generation, children, inputs)

    def _still_settled(self, key: Key, memo: AgentMemo, generation: int) -> bool:
        settled = memo.settled
        if settled is None or settled.generation != generation:
            return False
        return self._children_now(key, memo) == settled.children

    def caused_by_us(self, key: Key, resource_version: str | None) -> bool:
        """Is this version of the agent the echo of our own status write?"""
        memo = self.memos.get(key)
        return memo is not None and resource_version == memo.written_version is not None

    # --- children ---------------------------------------------------------------------------

    def _context(self, agent: AIAgent, memo: AgentMemo) -> RenderContext:
        """What the renderers may know of the cluster: the namespace's agents and the live
        Deployment's replicas (and who owns them, for the autoscaler hand-over)."""
        key = (agent.metadata.namespace, agent.metadata.name)
        record = self._newest(memo, key, ("Deployment", agent.metadata.name))
        live = None
        if record is not None:
            replicas = (record.body().get("spec") or {}).get("replicas")
            live = LiveDeployment(replicas, record.replicas_managers)
        peers = LazyPeers(lambda: self.cache.peers(key[0]))
        return RenderContext(self.config.render, peers, live)

    async def _converge(self, agent: AIAgent, context: RenderContext, memo: AgentMemo) -> Outcome:
        """Apply every child that is missing, outdated or drifted; prune the ones not wanted."""
        outcome = Outcome()
        wanted: set[ChildKey] = set()
        newest: dict[ChildKey, dict[str, Any]] = {}
        for row in CHILD_KINDS:
            objects = [drift.stamp(obj) for obj in row.render(agent, context)]
            states = None
            if row.feature and objects:
                states = outcome.features.setdefault(row.feature, [])
            if row.optional and not self.cache.served(row):
                if states is not None:
                    states.append(_unserved(row))
                continue
            for obj in objects:
                child = (row.kind, obj["metadata"]["name"])
                wanted.add(child)
                try:
                    if row.kind == "Deployment":
                        newest[child] = await self._ensure_deployment(
                            row, agent, memo, obj, context
                        )
                    else:
                        newest[child] = await self._ensure(row, agent, memo, obj)
                except ChildConflict as conflict:
                    problem = Problem(Reason.CHILD_CONFLICT, str(conflict))
                    outcome.problem = outcome.problem or problem
                except ApiError as error:
                    if error.namespace_terminating:
                        outcome.stop = True
                        return outcome
                    problem = classify(error)
                    if states is not None:  # an optional feature fails alone
                        states.append(FeatureState(row.feature or "", False, *_words(problem)))
                    else:
                        outcome.problem = outcome.problem or problem
                    log.warning("%s", error)
            if states is not None and all(s.ok for s in states):
                mine = [newest[k] for k in newest if k[0] == row.kind]
                states.append(_health(row, mine))
        name = agent.metadata.name
        outcome.deployment = newest.get(("Deployment", name)) or self._current_body(
            memo, (agent.metadata.namespace, name), "Deployment", name
        )
        await self._prune(agent, memo, wanted, outcome.deployment, context)
        outcome.wanted = wanted
        return outcome

    async def _ensure_deployment(
        self,
        row: ChildKind,
        agent: AIAgent,
        memo: AgentMemo,
        desired: dict[str, Any],
        context: RenderContext,
    ) -> dict[str, Any]:
        """`_ensure`, with spec.replicas handed over while an autoscaler owns it: to another
        field manager before our apply stops setting it (or the API server would reset it to
        1), and right after the Deployment is created without it (or it would run the
        default 1 until the HPA acts). See render/keda.py."""
        key = (agent.metadata.namespace, agent.metadata.name)
        child = (row.kind, desired["metadata"]["name"])
        await self._hand_over_replicas(agent, memo, row, desired, context)
        body = await self._ensure(row, agent, memo, desired)
        record = self._newest(memo, key, child)
        if record is not None:
            live = LiveDeployment(body.get("spec", {}).get("replicas"), record.replicas_managers)
            after = replace(context, deployment=live)
            body = await self._hand_over_replicas(agent, memo, row, desired, after) or body
        return body

    async def _hand_over_replicas(
        self,
        agent: AIAgent,
        memo: AgentMemo,
        row: ChildKind,
        desired: dict[str, Any],
        context: RenderContext,
    ) -> dict[str, Any] | None:
        """Apply only spec.replicas, as the hand-over field manager, if keda.py says so.
        Not forced: if the HPA changed the count since we looked, that is a conflict and
        the next pass hands over the new count, instead of this one undoing the HPA."""
        count = keda.handover_replicas(agent, context)
        key = (agent.metadata.namespace, agent.metadata.name)
        record = self._newest(memo, key, (row.kind, desired["metadata"]["name"]))
        if count is None or record is None:
            return None
        meta = desired["metadata"]
        log.info(
            "handing spec.replicas=%d of Deployment %s/%s over to %s",
            count,
            meta["namespace"],
            meta["name"],
            c.HANDOVER_FIELD_MANAGER,
        )
        replicas_only = {
            "apiVersion": desired["apiVersion"],
            "kind": desired["kind"],
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "spec": {"replicas": count},
        }
        body = await self.kube.apply(
            replicas_only, row.plural, record.uid, manager=c.HANDOVER_FIELD_MANAGER, force=False
        )
        self._remember(memo, row, desired, body)
        return body

    async def _ensure(
        self, row: ChildKind, agent: AIAgent, memo: AgentMemo, desired: dict[str, Any]
    ) -> dict[str, Any]:
        """Make the cluster hold `desired`; return the child as the cluster now holds it."""
        key = (agent.metadata.namespace, agent.metadata.name)
        child = (row.kind, desired["metadata"]["name"])
        known = self._newest(memo, key, child)
        if known is not None:
            if self._is_current(memo, child, known, desired):
                return known.body()
            try:
                return await self._apply(row, memo, desired, known.uid, known.body())
            except ApiError as error:
                if not error.uid_mismatch:
                    raise
                # Deleted or replaced since we last saw it: look at what is there now.
        # Who holds this name? Its metadata answers, from the API server's cache.
        live = await self.kube.get(Ref.of(desired, row.plural), metadata_only=True)
        if live is None:
            return await self._apply(row, memo, desired, None, None)
        if controlled_by(live, agent.metadata.uid) or (row.shared and _ours(live)):
            return await self._apply(row, memo, desired, live["metadata"]["uid"], None)
        if _adoptable(live):
            log.info("adopting %s %s/%s", row.kind, key[0], child[1])
            uid = live["metadata"]["uid"]
            taken = await self._apply(row, memo, desired, uid, None)
            # What its previous owner set and we do not render goes: it is ours now.
            body = await self._repair(row, desired, uid, taken)
            self._remember(memo, row, desired, body)
            await self._event(agent, "Adopted", f"adopted {row.kind} {child[1]}", "Normal")
            return body
        raise ChildConflict(conflict_message(row.kind, key[0], child[1], live))

    async def _apply(
        self,
        row: ChildKind,
        memo: AgentMemo,
        desired: dict[str, Any],
        uid: str | None,
        live: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Server-side apply; `live` (the object as last seen) allows a repair."""
        meta = desired["metadata"]
        log.info("applying %s %s/%s", row.kind, meta["namespace"], meta["name"])
        try:
            body = await self.kube.apply(desired, row.plural, uid)
        except ApiError as error:
            if not (live is not None and uid and error.status == 422):
                raise
            # Someone else's edit left entries our apply cannot remove (and that now clash
            # with ours). If the object itself is invalid this is refused too, and the agent
            # stalls with the server's message.
            log.warning("repairing %s %s/%s: %s", row.kind, meta["namespace"], meta["name"], error)
            body = await self._repair(row, desired, uid, live)
        self._remember(memo, row, desired, body)
        return body

    async def _repair(
        self, row: ChildKind, desired: dict[str, Any], uid: str, live: dict[str, Any]
    ) -> dict[str, Any]:
        """Make `live` exactly what we render where server-side apply cannot, leaving one
        owner of our fields.

        Server-side apply cannot remove what another manager set (a Service port someone
        re-keyed with `kubectl patch` stays and clashes with ours; an adopted object keeps its
        old owner's ports and selector keys). A JSON merge patch made by
        drift.takeover_patch can, but records a second managedFields entry (operation Update)
        that would keep those fields alive after we stop applying them, and takes from our
        Apply entry the fields it rewrote (a re-keyed list, say). So that entry is removed
        right after, and one more apply makes our Apply entry the only record of what is
        ours, owning every field we render."""
        ref = Ref.of(desired, row.plural)
        patch = drift.takeover_patch(live, desired)
        patched = await self.kube.patch(
            ref, {**patch, "metadata": {**patch["metadata"], "uid": uid}}
        )
        entries = patched.get("metadata", {}).get("managedFields") or []
        for index, entry in enumerate(entries):
            if entry.get("manager") == c.FIELD_MANAGER and entry.get("operation") == "Update":
                where = f"/metadata/managedFields/{index}"
                operations = [
                    {"op": "test", "path": f"{where}/manager", "value": c.FIELD_MANAGER},
                    {"op": "test", "path": f"{where}/operation", "value": "Update"},
                    {"op": "remove", "path": where},
                ]
                await self.kube.patch(ref, operations, json_patch=True)
                break
        return await self.kube.apply(desired, row.plural, uid)

    def _remember(
        self, memo: AgentMemo, row: ChildKind, desired: dict[str, Any], body: dict[str, Any]
    ) -> None:
        record = ChildRecord.of(body)
        child = (row.kind, desired["metadata"]["name"])
        memo.applied[child] = record
        memo.verified[child] = (record.digest, drift.applied_hash_of(desired) or "")

    def _is_current(
        self, memo: AgentMemo, child: ChildKey, known: ChildRecord, desired: dict[str, Any]
    ) -> bool:
        wanted = drift.applied_hash_of(desired) or ""
        if known.applied_hash != wanted:
            return False
        if memo.verified.get(child) == (known.digest, wanted):
            return True
        if drift.contains(known.body(), desired):
            memo.verified[child] = (known.digest, wanted)
            return True
        return False

    async def _prune(
        self,
        agent: AIAgent,
        memo: AgentMemo,
        wanted: set[ChildKey],
        deployment: dict[str, Any] | None,
        context: RenderContext,
    ) -> None:
        """Delete what we own and no longer render, but never an object the pod template
        still references: a ServiceAccount stays until the rollout away from it is done."""
        key = (agent.metadata.namespace, agent.metadata.name)
        template = ((deployment or {}).get("spec") or {}).get("template") or {}
        in_use = {("ServiceAccount", (template.get("spec") or {}).get("serviceAccountName"))}
        rolled_out = rollout(deployment).done
        for row in CHILD_KINDS:
            if row.optional and not self.cache.served(row):
                continue
            for record in self.cache.children(row.kind, key):
                child = (row.kind, record.name)
                if child in wanted or child in in_use:
                    continue
                if row.shared and (
                    row.still_wanted is None or row.still_wanted(record.body(), context)
                ):
                    continue  # another agent of the namespace still uses it
                if row.kind == "ServiceAccount" and not rolled_out:
                    continue  # old pods still run as it
                log.info("pruning %s %s/%s", row.kind, key[0], record.name)
                ref = Ref(row.api_version, row.plural, key[0], record.name, row.kind)
                await self.kube.delete(ref, record.uid)
                memo.applied.pop(child, None)
                memo.verified.pop(child, None)

    def observe_child(self, event_type: str, key: Key, body: dict[str, Any]) -> None:
        """Called for every watch event of a child: once the cache holds our applied version
        (or a newer one), or the child is gone, our remembered copy is no longer needed."""
        memo = self.memos.get(key)
        if memo is None:
            return
        child = (body.get("kind", ""), body["metadata"]["name"])
        ours = memo.applied.get(child)
        if ours is None:
            return
        if event_type == "DELETED" or not ours.newer_than(ChildRecord.of(body)):
            del memo.applied[child]

    def _newest(self, memo: AgentMemo, key: Key, child: ChildKey) -> ChildRecord | None:
        """The newest copy of a child: the watch cache's, or our last apply response while
        the cache has not caught up with it yet."""
        cached = next((r for r in self.cache.children(child[0], key) if r.name == child[1]), None)
        ours = memo.applied.get(child)
        if ours is None or (cached is not None and not ours.newer_than(cached)):
            return cached
        return ours

    def _current_body(
        self, memo: AgentMemo, key: Key, kind: str, name: str
    ) -> dict[str, Any] | None:
        record = self._newest(memo, key, (kind, name))
        return record.body() if record else None

    # --- status -----------------------------------------------------------------------------

    async def _write_status(
        self, key: Key, body: dict[str, Any], status: dict[str, Any], urgent: bool
    ) -> Result:
        """Patch status if it changed; returns the delay if the write had to wait."""
        memo = self.memos.setdefault(key, AgentMemo())
        previous = body.get("status") or {}
        if memo.written is not None and _older(body, memo.written_version):
            # The cache has not seen our last write yet: compare with what we wrote, or a
            # busy operator writes every status twice.
            previous = unpack(memo.written)
        if status == previous:
            return Result()
        now = self.clock()
        generation = status.get("observedGeneration")
        if previous.get("observedGeneration") != generation != memo.deferred_generation:
            # A new agent or a new spec: waiting one window usually lets its first status
            # be the final one (a quick rollout costs one status write, not one per step).
            memo.deferred_generation = generation
            memo.generation_seen = now
            memo.status_not_before = max(memo.status_not_before, now + self.status_window)
        not_before = memo.status_not_before
        if previous.get("observedGeneration") not in (None, generation) and _in_progress(status):
            # A new spec of an agent that has a status: report it once its rollout settled
            # (or after SETTLE_WINDOW, or at once for a problem). Until then observedGeneration
            # < generation tells kstatus-aware tools (kubectl wait, Argo CD, Flux) that it is
            # in progress: none of them takes the old Ready for the new spec.
            not_before = max(not_before, memo.generation_seen + SETTLE_WINDOW)
        if not _significant(previous, status):
            # Only a message or a count moved (a rollout's progress): every few seconds is
            # enough, and a fleet rolling out at once costs a fraction of the writes.
            not_before = max(not_before, memo.last_written + PROGRESS_WINDOW)
        if not urgent and not_before > now:
            return Result(requeue_after=not_before - now)  # the newest, then
        meta = body["metadata"]
        patch = status_patch(previous, status)
        log.debug("status of %s/%s: %s", meta["namespace"], meta["name"], patch)
        written = await self.kube.patch_status(meta["namespace"], meta["name"], patch)
        memo.written_version = (written.get("metadata") or {}).get("resourceVersion")
        memo.written = pack(written.get("status") or status)
        memo.status_not_before = now + self.status_window
        memo.last_written = now
        stalled = _condition(status, c.COND_STALLED)
        if stalled.get("status") == "True" and _condition(previous, c.COND_STALLED) != stalled:
            await self._event_of(body, stalled["reason"], stalled["message"], "Warning")
        return Result()

    async def acknowledge(self, key: Key, ahead: int) -> None:
        """Show a new agent that it was seen (Reconciling, reason Queued) while a burst keeps
        the workers busy. Written only over an empty status, and only to the version read
        (a precondition), so it never overwrites what a reconcile wrote."""
        record = self.cache.agent(key)
        if record is None or record.deleting or record.conditions:
            return
        body = record.body()
        meta = body["metadata"]
        if (body.get("status") or {}).get("observedGeneration") is not None:
            return
        status = queued_status(ahead, self.config.workers)
        try:
            await self.kube.patch_status(
                meta["namespace"], meta["name"], status, meta.get("resourceVersion")
            )
        except ApiError as error:
            if error.status not in (404, 409):  # gone, or a reconcile got there first
                raise

    async def _event(self, agent: AIAgent, reason: str, message: str, type_: str) -> None:
        body = {
            "metadata": {
                "name": agent.metadata.name,
                "namespace": agent.metadata.namespace,
                "uid": agent.metadata.uid,
            }
        }
        await self._event_of(body, reason, message, type_)

    async def _event_of(self, body: dict[str, Any], reason: str, message: str, type_: str) -> None:
        meta = body["metadata"]
        try:
            await self.kube.post_event(body, reason, message, type_)
        except ApiError:  # an Event is a courtesy; the condition already says it all
            log.warning(
                "could not post the %s event for %s/%s",
                reason,
                meta["namespace"],
                meta["name"],
                exc_info=True,
            )


def placed_condition(state: AgentPlacement) -> Placed:
    """The Placed condition from the placer's books for one agent."""
    replicas = tuple(
        {"node": r.node, "gpus": list(r.gpus), "vramMiB": r.vram_mib} for r in state.placed
    )
    committed = sum(r.vram_mib * len(r.gpus) for r in state.placed)
    vram = format_mib(committed) if committed else None
    if state.refusal is not None:
        refusal = state.refusal
        return Placed(False, refusal.reason, refusal.message, replicas, vram, refused=True)
    if state.waiting:
        message = f"{state.waiting} replica(s) waiting for a placement decision"
        return Placed(False, Reason.PENDING, message, replicas, vram)
    where = ", ".join(f"{r.node} GPU {','.join(map(str, r.gpus))}" for r in state.placed)
    message = f"{len(state.placed)} replica(s) placed" + (f": {where}" if where else "")
    return Placed(True, Reason.PLACED, message, replicas, vram)


# Progress-only status changes (messages, replica counts) are written at most this often,
# and a new spec's first status waits at most this long for its rollout to settle: a fleet-wide
# image change then costs one status write per agent, not three (measured at 1,000 agents).
PROGRESS_WINDOW = 10.0
SETTLE_WINDOW = 60.0


def _in_progress(status: dict[str, Any]) -> bool:
    return _condition(status, c.COND_RECONCILING).get("status") == "True"


def _significant(previous: dict[str, Any], status: dict[str, Any]) -> bool:
    """Does the change say something new, beyond a rollout's progress (replica counts and
    condition messages)?"""

    def essence(s: dict[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in s.items() if k not in _PROGRESS_KEYS}
        kept["conditions"] = sorted(
            (str(x.get("type")), str(x.get("status")), str(x.get("reason")))
            for x in s.get("conditions") or []
        )
        return kept

    return essence(previous) != essence(status)


_PROGRESS_KEYS = frozenset({"replicas", "readyReplicas", "availableReplicas", "conditions"})


def classify(error: ApiError) -> Problem:
    """What a refusal means for the agent: who must act, and whether a retry can help."""
    if error.quota_exceeded:
        return Problem(Reason.QUOTA_EXCEEDED, error.message)
    if error.status == 403:
        return Problem(
            Reason.FORBIDDEN,
            f"{error.message} (the operator's ServiceAccount may lack an RBAC rule, or it has"
            " not propagated yet; retrying)",
        )
    if error.transient or error.unserved:
        return Problem(Reason.RETRYING, f"{error}; retrying with backoff", stalled=False)
    return Problem(Reason.APPLY_FAILED, str(error))


def conflict_message(kind: str, namespace: str, name: str, live: dict[str, Any]) -> str:
    owner = foreign_controller(live)
    whose = f" (it is controlled by {owner})" if owner else ""
    return (
        f"{kind} {namespace}/{name} exists and is not managed by this AIAgent{whose}; "
        f"delete or rename it, or annotate it {c.ANNOTATION_ADOPT}=true to hand it over"
    )


def _ours(live: dict[str, Any]) -> bool:
    labels = live["metadata"].get("labels") or {}
    return labels.get(c.LABEL_MANAGED_BY) == c.MANAGED_BY


def _adoptable(live: dict[str, Any]) -> bool:
    annotations = live["metadata"].get("annotations") or {}
    return annotations.get(c.ANNOTATION_ADOPT) == "true" and foreign_controller(live) is None


def _unserved(row: ChildKind) -> FeatureState:
    return FeatureState(
        row.feature or "",
        False,
        Reason.CRD_NOT_INSTALLED,
        f"the API server does not serve {row.resource}/{row.version} (is its CRD installed?);"
        " the agent runs without it and converges once the CRD appears",
    )


def _health(row: ChildKind, applied: list[dict[str, Any]]) -> FeatureState:
    """The feature's condition once its objects were accepted: what the objects' own status
    says (KEDA's conditions on a ScaledObject, say), or simply Applied."""
    for body in applied:
        said = row.health(body) if row.health else None
        if said is not None and not said[0]:
            return FeatureState(row.feature or "", *said)
    for body in applied:
        said = row.health(body) if row.health else None
        if said is not None:
            return FeatureState(row.feature or "", *said)
    return FeatureState(row.feature or "", True, Reason.APPLIED, "")


def _words(problem: Problem) -> tuple[str, str]:
    return problem.reason, problem.message


def _fold(states: list[FeatureState]) -> FeatureState:
    """One condition per feature: the first failure, else success."""
    return next((s for s in states if not s.ok), states[0])


def _older(body: dict[str, Any], version: str | None) -> bool:
    """Is this copy of an object older than `version`? (resourceVersions are etcd
    revisions; anything unparsable counts as not older.)"""
    try:
        return int(body["metadata"]["resourceVersion"]) < int(version or "")
    except (KeyError, TypeError, ValueError):
        return False


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((x for x in status.get("conditions") or [] if x.get("type") == kind), {})


def describe(error: ValidationError) -> str:
    """pydantic's errors as one sentence naming spec fields, e.g. 'spec.gpu.vram: ...'."""
    parts = []
    for item in error.errors()[:3]:
        where = ".".join(str(p) for p in item["loc"])
        parts.append(f"{where}: {item['msg']}")
    more = len(error.errors()) - 3
    return "invalid spec: " + "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
