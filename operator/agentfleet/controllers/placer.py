"""GPU placement at run time: the pure ledger (placement/) fed by watches, one decision at a
time, written onto each gated Pod.

A GPU agent's Pods are created behind a scheduling gate (render/gpu.py). For each one the
placer asks the ledger for a node and GPUs, then in one patch records the decision on the Pod
(annotation), narrows its node affinity to that node (allowed on a gated Pod) and removes the
gate; the real kube-scheduler then binds it. A single worker makes the decisions, so a burst
of agents never over-commits a GPU; the books are rebuilt from the Pods' annotations, so they
are right after an operator restart. A Pod that cannot be placed stays gated (nothing churns
in the scheduler), its agent reports why, and it is tried again when capacity appears: a Pod
goes away, or a Node or node-agent Lease changes.

What the books believe (see placement/ledger.py and placement/owners.py): a decision counts
only on a Pod the operator's own Deployment made for an agent (Pod -> ReplicaSet ->
Deployment -> AIAgent, by uid); every other bound Pod counts by the GPUs it requests. So the
placer keeps a slim copy of every Pod that holds or may hold GPUs (agent Pods, and bound Pods
that request GPUs), the ReplicaSets of GPU agents, and classifies each Pod again when its
ReplicaSet, Deployment or agent changes. Nothing is decided before every watch has listed
(`start(ready)`): the books are then rebuilt from what was listed, complete before the first
decision. A decided Pod that the scheduler cannot bind where the ledger pinned it (something
the ledger could not see took the GPU) is deleted after `unschedulable_seconds`: its
ReplicaSet makes a new, gated Pod that is placed again from the books as they are then.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agentfleet.api import constants as c
from agentfleet.api.models import AIAgent
from agentfleet.controllers.cache import Key
from agentfleet.kube.client import ApiError, Ref, WritesRefused
from agentfleet.kube.workqueue import WorkQueue
from agentfleet.placement import (
    Decision,
    Inventory,
    Ledger,
    PlacementRecord,
    Refusal,
    pin_to_node,
    place,
    request_for_pod,
)
from agentfleet.placement import labels as k
from agentfleet.placement.decide import Policy
from agentfleet.placement.inventory import DEFAULT_MAX_GPUS
from agentfleet.placement.ledger import GPU_RESOURCES, is_gated, pinned_node, pod_key
from agentfleet.placement.owners import (
    ReplicaSetOwner,
    claimed_agent,
    controller_of,
    genuine_agent,
    replicaset_owner,
)
from agentfleet.telemetry import logs, metrics, tracing

log = logging.getLogger(__name__)

DEFAULT_UNSCHEDULABLE_SECONDS = 60.0
# How long a replica lost with its node waits to be reported as placed again: the node
# failure timeout (30 s), the eviction and a re-placement take about a minute; a replacement
# placed much later is not the same replica's move any more.
LOST_SECONDS = 600


class PodWriter(Protocol):
    async def patch(self, ref: Ref, patch: dict[str, Any]) -> dict[str, Any]: ...

    async def delete(self, ref: Ref, uid: str) -> None: ...

    async def post_event(
        self, body: dict[str, Any], reason: str, message: str, type_: str = "Warning"
    ) -> None: ...


@dataclass(frozen=True)
class Stuck:
    """A decided Pod the scheduler cannot bind on the node the ledger pinned it to."""

    node: str
    since: datetime.datetime
    message: str  # the scheduler's (PodScheduled=False, reason Unschedulable)


@dataclass(frozen=True)
class AgentPlacement:
    """Where an agent's replicas stand, for its status."""

    placed: tuple[PlacementRecord, ...] = ()
    waiting: int = 0  # gated Pods without a decision yet
    refusal: Refusal | None = None
    stuck: tuple[tuple[str, Stuck], ...] = ()  # (Pod name, why), decided but unschedulable
    replace_after: float = DEFAULT_UNSCHEDULABLE_SECONDS


def agent_of(pod: dict[str, Any]) -> Key | None:
    """The agent a Pod's labels name (a claim: the placer checks it, see genuine_agent)."""
    return claimed_agent(pod)


def pod_name(key: str) -> str:
    """The Pod's name in a ledger key (`namespace/name`)."""
    return key.rpartition("/")[2]


def decision_patch(pod: dict[str, Any], decision: Decision) -> dict[str, Any]:
    """One JSON merge patch: the decision, the pinned affinity, the gate removed. The
    resourceVersion makes it apply to the Pod we decided for, or not at all."""
    spec = pod.get("spec") or {}
    gates = [g for g in spec.get("schedulingGates") or [] if g.get("name") != c.SCHEDULING_GATE]
    return {
        "metadata": {
            "resourceVersion": pod["metadata"]["resourceVersion"],
            "annotations": {k.PLACEMENT: decision.annotation()},
        },
        "spec": {
            "affinity": pin_to_node(spec.get("affinity"), decision.node),
            "schedulingGates": gates,
        },
    }


# --- slim Pods: what the books and the decisions read, nothing else ------------------------

_CONTAINER_KEYS = ("name", "resources", "restartPolicy")
_SPEC_KEYS = (
    "nodeName",
    "schedulingGates",
    "resources",
    "overhead",
    "tolerations",
    "nodeSelector",
    "affinity",
)


def requests_gpus(pod: Mapping[str, Any]) -> bool:
    """Does the Pod ask for a GPU device anywhere (no quantity is parsed)?"""
    spec = pod.get("spec") or {}
    containers = [*(spec.get("containers") or ()), *(spec.get("initContainers") or ())]
    for container in containers:
        resources = (container or {}).get("resources") or {}
        for part in ("requests", "limits"):
            if any(r in (resources.get(part) or {}) for r in GPU_RESOURCES):
                return True
    return any(r in (spec.get("overhead") or {}) for r in GPU_RESOURCES)


def is_relevant(pod: Mapping[str, Any]) -> bool:
    """Pods the placer keeps: GPU agents' (labelled, gated or not, ours or forged: the owner
    chain decides) and bound Pods that request GPUs. Finished Pods hold nothing."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if labels.get(c.LABEL_GPU) == "true":
        return True
    return bool((pod.get("spec") or {}).get("nodeName")) and requests_gpus(pod)


def slim(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The Pod without what the placer never reads (env, volumes, probes, managedFields...)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    controller = controller_of(pod)
    conditions = [
        {key: cond.get(key) for key in ("type", "status", "reason", "lastTransitionTime")}
        | {"message": str(cond.get("message") or "")[:1024]}
        for cond in (pod.get("status") or {}).get("conditions") or ()
        if isinstance(cond, dict) and cond.get("type") == "PodScheduled"
    ]
    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "deletionTimestamp": meta.get("deletionTimestamp"),
            "labels": {
                key: labels[key] for key in (c.LABEL_INSTANCE, c.LABEL_GPU) if key in labels
            },
            "annotations": (
                {k.PLACEMENT: annotations[k.PLACEMENT]} if k.PLACEMENT in annotations else {}
            ),
            "ownerReferences": [dict(controller)] if controller else [],
        },
        "spec": {
            **{key: spec[key] for key in _SPEC_KEYS if key in spec},
            "containers": [
                {key: x[key] for key in _CONTAINER_KEYS if key in x}
                for x in spec.get("containers") or ()
            ],
            "initContainers": [
                {key: x[key] for key in _CONTAINER_KEYS if key in x}
                for x in spec.get("initContainers") or ()
            ],
        },
        "status": {"phase": (pod.get("status") or {}).get("phase"), "conditions": conditions},
    }


def stuck_of(pod: Mapping[str, Any]) -> Stuck | None:
    """A decided, ungated, unbound Pod the scheduler reports Unschedulable, since when."""
    spec = pod.get("spec") or {}
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if spec.get("nodeName") or is_gated(pod) or k.PLACEMENT not in annotations:
        return None
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if (cond.get("type"), cond.get("status"), cond.get("reason")) == (
            "PodScheduled",
            "False",
            "Unschedulable",
        ):
            since = _timestamp(cond.get("lastTransitionTime"))
            node = pinned_node(spec) or "?"
            return Stuck(node, since, str(cond.get("message") or "")) if since else None
    return None


def _timestamp(text: Any) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


class Placer:
    def __init__(
        self,
        writer: PodWriter,
        agent: Callable[[Key], AIAgent | None],
        agent_changed: Callable[[Key], None],
        policy: Policy = "spread",
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
        *,
        deployment_uid: Callable[[Key], str | None] = lambda key: None,
        max_gpus: int = DEFAULT_MAX_GPUS,
        lease_namespace: str = k.LEASE_NAMESPACE,
        unschedulable_seconds: float = DEFAULT_UNSCHEDULABLE_SECONDS,
    ) -> None:
        self.writer = writer
        self.agent = agent
        self.agent_changed = agent_changed
        self.policy = policy
        self.now = now
        # The uid of the Deployment the operator keeps for an agent (named after it and
        # controlled by the AIAgent's uid), None when there is none.
        self.deployment_uid = deployment_uid
        self.unschedulable_seconds = unschedulable_seconds
        self.inventory = Inventory(max_gpus, lease_namespace)
        self.ledger = Ledger()
        self.queue: WorkQueue[str] = WorkQueue("placement")
        self.synced = False  # every watch has listed: classify and decide
        # Set with `synced`: the reconciler's workers wait for it, so no agent's status is
        # computed from half-built books (an operator restart writes nothing).
        self.books_ready = asyncio.Event()
        self.pods: dict[str, dict[str, Any]] = {}  # slim Pods that hold or may hold GPUs
        self.replicasets: dict[str, ReplicaSetOwner] = {}  # GPU agents' ReplicaSets by uid
        self.by_owner: dict[str, set[str]] = defaultdict(set)  # ReplicaSet uid -> Pods
        self.by_claim: dict[Key, set[str]] = defaultdict(set)  # agent a label names -> Pods
        self.genuine: dict[str, Key] = {}  # Pod -> its agent, for Pods the operator made
        self._deployments: dict[Key, str] = {}  # agent -> its Deployment's uid, as last seen
        self.gated: dict[str, dict[str, Any]] = {}  # gated Pods without a decision
        self.pods_of: dict[Key, set[str]] = defaultdict(set)  # agent -> its Pods we know
        self.refusals: dict[Key, Refusal] = {}
        self.stuck: dict[str, Stuck] = {}  # decided Pods the scheduler cannot bind
        # Nodes an agent lost placed Pods with, and when: told in the Replaced Event of the
        # next placement. Kept for LOST_SECONDS at most and dropped with the agent, so an
        # agent deleted or scaled down after a node failure leaves nothing behind.
        self.lost: dict[Key, list[tuple[str, datetime.datetime]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.leading = asyncio.Event()  # decisions only while set (see start)
        self.leading.set()

    # --- fed by the watches ---------------------------------------------------------------

    def pod_event(self, event: str, pod: dict[str, Any]) -> None:
        """From the Pod watch (every Pod; only relevant ones are kept)."""
        if event == "DELETED":
            self.pod_gone(pod)
        else:
            self.pod_seen(pod)

    def pod_seen(self, pod: dict[str, Any]) -> None:
        key = pod_key(pod)
        if not is_relevant(pod):
            if key in self.pods:
                self.pod_gone(pod)
            return
        body = slim(pod)
        old = self.pods.get(key)
        if old is not None:
            self._unindex(key, old)
        self.pods[key] = body
        owner = controller_of(body)
        if owner is not None:
            self.by_owner[str(owner.get("uid") or "")].add(key)
        claim = claimed_agent(body)
        if claim is not None:
            self.by_claim[claim].add(key)
        if self.synced:
            self._classify(key)

    def _unindex(self, key: str, body: Mapping[str, Any]) -> None:
        owner = controller_of(body)
        if owner is not None:
            _discard(self.by_owner, str(owner.get("uid") or ""), key)
        claim = claimed_agent(body)
        if claim is not None:
            _discard(self.by_claim, claim, key)

    def _classify(self, key: str) -> None:
        """Book the Pod as what it is now: the operator's (its decision counts) or not."""
        pod = self.pods[key]
        agent = genuine_agent(pod, self.replicasets.get, self.deployment_uid)
        before = self.genuine.pop(key, None)
        if before is not None and before != agent:
            self._drop_from_agent(before, key)
        deleting = bool(pod["metadata"].get("deletionTimestamp"))
        if deleting:
            self._note_loss(agent, key)  # an eviction frees its GPUs at once
        self.ledger.upsert(pod, trusted=agent is not None)
        was_stuck = key in self.stuck
        stuck = stuck_of(pod) if agent is not None and not deleting else None
        if stuck is None:
            self.stuck.pop(key, None)
        elif self.stuck.get(key) != stuck:
            self.stuck[key] = stuck
            self.queue.add_after(key, self._seconds_until_replace(stuck))
        if agent is None:
            self.gated.pop(key, None)
            if before is not None:
                self.agent_changed(before)
            return
        self.genuine[key] = agent
        self.pods_of[agent].add(key)
        if is_gated(pod) and not deleting:
            # An annotation on a Pod that is still gated is not ours: it is decided anew.
            self.gated[key] = pod
            self.queue.add(key)
        else:
            self.gated.pop(key, None)
        if before != agent or was_stuck != (stuck is not None):
            self.agent_changed(agent)

    def _drop_from_agent(self, agent: Key, key: str) -> None:
        pods = self.pods_of.get(agent)
        if pods is not None:
            pods.discard(key)
            if not pods:
                del self.pods_of[agent]
                self.refusals.pop(agent, None)

    def _note_loss(self, agent: Key | None, key: str) -> None:
        """A placed Pod is going away while its node is not usable: remember it, to say
        where its replacement went."""
        usage = self.ledger.pods.get(key)
        if agent and usage and usage.placement and usage.node not in self.inventory.nodes:
            now = self.now()
            self._expire_losses(now)
            self.lost.setdefault(agent, []).append((usage.node, now))

    def _expire_losses(self, now: datetime.datetime) -> None:
        """A loss whose replacement was never placed (the agent was scaled down) is old news."""
        oldest = now - datetime.timedelta(seconds=LOST_SECONDS)
        for agent in list(self.lost):
            kept = [(node, when) for node, when in self.lost[agent] if when >= oldest]
            if kept:
                self.lost[agent] = kept
            else:
                del self.lost[agent]

    def agent_gone(self, agent: Key) -> None:
        """The AIAgent was deleted: nothing of it is to be told or retried any more (its Pods
        go with the garbage collector and are forgotten one by one in `pod_gone`)."""
        self.lost.pop(agent, None)
        self.refusals.pop(agent, None)

    def pod_gone(self, pod: dict[str, Any]) -> None:
        key = pod_key(pod)
        body = self.pods.pop(key, None)
        if body is not None:
            self._unindex(key, body)
        agent = self.genuine.pop(key, None)
        self._note_loss(agent, key)
        self.ledger.remove(key)
        self.gated.pop(key, None)
        self.stuck.pop(key, None)
        self.queue.drop(key)  # no retry timer or failure count outlives the Pod
        if agent:
            self._drop_from_agent(agent, key)
            self.agent_changed(agent)
        self.capacity_changed()

    def replicaset_event(self, event: str, replicaset: dict[str, Any]) -> None:
        """From the watch of GPU agents' ReplicaSets: their Pods may be genuine now."""
        uid = str((replicaset.get("metadata") or {}).get("uid") or "")
        owner = None if event == "DELETED" else replicaset_owner(replicaset)
        if self.replicasets.get(uid) == owner:
            return
        if owner is None:
            self.replicasets.pop(uid, None)
        else:
            self.replicasets[uid] = owner
        self._reclassify(self.by_owner.get(uid, ()))

    def agent_identity_changed(self, agents: Iterable[Key]) -> None:
        """An agent or its Deployment may have appeared, changed owner or gone: when the
        Deployment the operator keeps for it is another now, its Pods may have become (or
        stopped being) the operator's. Cheap when nothing changed (most Deployment events
        are rollout progress)."""
        for agent in agents:
            uid = self.deployment_uid(agent)
            if self._deployments.get(agent) == uid:
                continue
            if uid is None:
                self._deployments.pop(agent, None)
            else:
                self._deployments[agent] = uid
            self._reclassify(self.by_claim.get(agent, ()))

    def _reclassify(self, keys: Iterable[str]) -> None:
        if self.synced:
            for key in list(keys):
                if key in self.pods:
                    self._classify(key)

    def node_seen(self, node: dict[str, Any]) -> None:
        self.inventory.set_node(node, self.now())
        self.capacity_changed()

    def node_gone(self, name: str) -> None:
        self.inventory.remove_node(name)
        self.ledger.forget_node(name)

    def lease_event(self, event: str, lease: dict[str, Any]) -> None:
        """From the watch of the node agent's Leases (its namespace only)."""
        if event == "DELETED":
            self.inventory.remove_lease(lease, self.now())
        else:
            self.inventory.set_lease(lease, self.now())
            self.capacity_changed()

    def become_synced(self) -> None:
        """Every watch has listed: classify every Pod kept so far (the books are then
        complete) and queue the gated and the stuck ones."""
        self.synced = True
        self.ledger = Ledger()
        for key in list(self.pods):
            self._classify(key)
        self.books_ready.set()
        log.info(
            "placement books rebuilt from %d Pods (%d the operator's), %d nodes",
            len(self.pods),
            len(self.genuine),
            len(self.inventory.nodes) + len(self.inventory.ineligible),
        )

    # --- decisions ------------------------------------------------------------------------

    def capacity_changed(self) -> None:
        """Something may have freed room: try the Pods that were refused again."""
        if not self.refusals:
            return
        for key in self.gated:
            if self.genuine.get(key) in self.refusals:
                self.queue.add_after(key, 0.5)  # coalesces a burst of changes

    def start(
        self, ready: list[asyncio.Event] | None = None, leading: asyncio.Event | None = None
    ) -> None:
        """Decide once every `ready` event is set (every watch the books read has listed),
        and only while `leading` is set (this replica holds the leader Lease); a follower
        only keeps its books."""
        if leading is not None:
            self.leading = leading
        self._task = asyncio.create_task(self._work(ready or []), name="placement-worker")

    async def stop(self) -> None:
        self.queue.shutdown()
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _work(self, ready: list[asyncio.Event]) -> None:
        for event in ready:
            await event.wait()
        self.become_synced()
        while True:
            await self.leading.wait()
            key = await self.queue.get()
            try:
                await self.leading.wait()
                await self.place_one(key)
                self.queue.forget(key)
            except WritesRefused as refused:  # the leadership lapsed: not a failure
                delay = self.queue.add_rate_limited(key)
                log.info("pod %s: %s; retrying in %.1fs", key, refused, delay)
            except Exception:  # one Pod's trouble must not stop the placement of the others
                delay = self.queue.add_rate_limited(key)
                log.exception("placing pod %s failed; retrying in %.1fs", key, delay)
            finally:
                self.queue.done(key)

    def _seconds_until_replace(self, stuck: Stuck) -> float:
        due = stuck.since + datetime.timedelta(seconds=self.unschedulable_seconds)
        return max(0.0, (due - self.now()).total_seconds())

    async def place_one(self, key: str) -> None:
        stuck = self.stuck.get(key)
        if stuck is not None:
            await self._replace_stuck(key, stuck)
            return
        pod = self.gated.get(key)
        agent_key = self.genuine.get(key)
        if pod is None or agent_key is None:
            return
        agent = self.agent(agent_key)
        if agent is None:
            return  # its agent is gone; the garbage collector removes the Pod
        with (
            logs.about_agent(*agent_key),
            tracing.agent_span("place", *agent_key, **{"k8s.pod.name": pod_name(key)}) as span,
        ):
            await self._decide(key, pod, agent_key, agent, span)

    async def _decide(
        self, key: str, pod: dict[str, Any], agent_key: Key, agent: AIAgent, span: Any
    ) -> None:
        """One decision, in the placement span: the node and GPUs, or why not."""
        self.inventory.refresh(self.now())  # a heartbeat may have run out since
        request = request_for_pod(pod, agent.spec.gpu, f"{agent_key[0]}/{agent_key[1]}")
        with metrics.PLACEMENT_DECISION.time():
            result = place(request, self.inventory, self.ledger, self.policy)
        if isinstance(result, Refusal):
            tracing.annotate(span, **{"agentfleet.placement.refused": result.reason})
            if self.refusals.get(agent_key) != result:
                log.info("cannot place pod %s: %s", key, result.message)
                self.refusals[agent_key] = result
                self.agent_changed(agent_key)
            return
        tracing.annotate(
            span,
            **{
                "agentfleet.placement.node": result.node,
                "agentfleet.placement.gpus": list(result.gpus),
            },
        )
        self.ledger.assume(pod, result.record)
        meta = pod["metadata"]
        ref = Ref("v1", "pods", meta["namespace"], meta["name"], "Pod")
        try:
            patched = await self.writer.patch(ref, decision_patch(pod, result))
        except ApiError as error:
            self.ledger.upsert(pod)  # undo the assumption
            if error.status == 404:
                self.pod_gone(pod)
                return
            if error.status == 409:
                return  # the Pod changed; its watch event brings it back here
            raise
        self.pod_seen(patched)
        log.info("placed pod %s on %s GPU %s", key, result.node, list(result.gpus))
        self.refusals.pop(agent_key, None)
        await self._report_move(agent, agent_key, result)
        self.agent_changed(agent_key)

    async def _replace_stuck(self, key: str, stuck: Stuck) -> None:
        """Delete a decided Pod the scheduler has not bound for `unschedulable_seconds`: its
        ReplicaSet makes a new, gated one, placed from the books as they are now."""
        wait = self._seconds_until_replace(stuck)
        if wait > 0:
            self.queue.add_after(key, wait)
            return
        pod, agent_key = self.pods.get(key), self.genuine.get(key)
        if pod is None or agent_key is None:
            return
        meta = pod["metadata"]
        ref = Ref("v1", "pods", meta["namespace"], meta["name"], "Pod")
        await self.writer.delete(ref, str(meta.get("uid") or ""))
        self.stuck.pop(key, None)
        message = (
            f"replica Pod {meta['name']} could not be scheduled on {stuck.node}, where the"
            f" ledger placed it, for {self.unschedulable_seconds:g}s ({stuck.message}):"
            " deleted, to be placed again"
        )
        log.warning("%s/%s: %s", *agent_key, message)
        agent = self.agent(agent_key)
        if agent is not None:
            body = {
                "metadata": {
                    "name": agent_key[1],
                    "namespace": agent_key[0],
                    "uid": agent.metadata.uid,
                }
            }
            try:
                await self.writer.post_event(body, "Unschedulable", message)
            except ApiError:
                log.warning("could not post the Unschedulable event", exc_info=True)
        self.agent_changed(agent_key)

    async def _report_move(self, agent: AIAgent, key: Key, decision: Decision) -> None:
        """After a node failure, say what moved where (an Event on the AIAgent)."""
        self._expire_losses(self.now())
        if not self.lost.get(key):
            return
        old, _ = self.lost[key].pop(0)
        if not self.lost[key]:
            del self.lost[key]
        body = {"metadata": {"name": key[1], "namespace": key[0], "uid": agent.metadata.uid}}
        message = (
            f"a replica on {old} (node unavailable) was placed again on {decision.node}"
            f" GPU {','.join(map(str, decision.gpus))}"
        )
        try:
            await self.writer.post_event(body, "Replaced", message, "Normal")
        except ApiError:
            log.warning("could not post the Replaced event for %s/%s", *key, exc_info=True)

    # --- for the agent's status -----------------------------------------------------------

    def state(self, key: Key) -> AgentPlacement:
        placed = []
        waiting = 0
        stuck = []
        for pod in sorted(self.pods_of.get(key, ())):
            usage = self.ledger.pods.get(pod)
            if pod in self.stuck:
                stuck.append((pod.partition("/")[2], self.stuck[pod]))
            elif usage is not None and usage.placement is not None:
                placed.append(usage.placement)
            elif pod in self.gated:
                waiting += 1
        return AgentPlacement(
            tuple(placed),
            waiting,
            self.refusals.get(key),
            tuple(stuck),
            self.unschedulable_seconds,
        )


def _discard(index: dict[Any, set[str]], key: Any, value: str) -> None:
    values = index.get(key)
    if values is not None:
        values.discard(value)
        if not values:
            del index[key]
