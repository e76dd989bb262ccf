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
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from agentfleet.api import constants as c
from agentfleet.api.models import AIAgent
from agentfleet.controllers.cache import Key
from agentfleet.kube.client import ApiError, Ref
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
from agentfleet.placement.ledger import pod_key
from agentfleet.telemetry import logs, metrics, tracing

log = logging.getLogger(__name__)


class PodWriter(Protocol):
    async def patch(self, ref: Ref, patch: dict[str, Any]) -> dict[str, Any]: ...

    async def post_event(
        self, body: dict[str, Any], reason: str, message: str, type_: str = "Warning"
    ) -> None: ...


@dataclass(frozen=True)
class AgentPlacement:
    """Where an agent's replicas stand, for its status."""

    placed: tuple[PlacementRecord, ...] = ()
    waiting: int = 0  # gated Pods without a decision yet
    refusal: Refusal | None = None


def agent_of(pod: dict[str, Any]) -> Key | None:
    meta = pod.get("metadata") or {}
    name = (meta.get("labels") or {}).get(c.LABEL_INSTANCE)
    return (meta.get("namespace") or "", name) if name else None


def pod_name(key: str) -> str:
    """The Pod's name in a ledger key (`namespace/name`)."""
    return key.rpartition("/")[2]


def is_gated(pod: dict[str, Any]) -> bool:
    gates = (pod.get("spec") or {}).get("schedulingGates") or []
    return any(gate.get("name") == c.SCHEDULING_GATE for gate in gates)


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


class Placer:
    def __init__(
        self,
        writer: PodWriter,
        agent: Callable[[Key], AIAgent | None],
        agent_changed: Callable[[Key], None],
        policy: Policy = "spread",
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self.writer = writer
        self.agent = agent
        self.agent_changed = agent_changed
        self.policy = policy
        self.now = now
        self.inventory = Inventory()
        self.ledger = Ledger()
        self.queue: WorkQueue[str] = WorkQueue("placement")
        self.gated: dict[str, dict[str, Any]] = {}  # gated Pods without a decision
        self.pods_of: dict[Key, set[str]] = defaultdict(set)  # agent -> its Pods we know
        self.refusals: dict[Key, Refusal] = {}
        self.lost: dict[Key, list[str]] = defaultdict(list)  # nodes an agent lost Pods with
        self._task: asyncio.Task[None] | None = None

    # --- fed by the watches (before any decision is made: see placement_handlers.py) --------

    def pod_seen(self, pod: dict[str, Any]) -> None:
        key, agent = pod_key(pod), agent_of(pod)
        if pod["metadata"].get("deletionTimestamp"):
            self._note_loss(agent, key)  # an eviction frees its GPUs at once
        self.ledger.upsert(pod)
        if agent:
            self.pods_of[agent].add(key)
        decided = k.PLACEMENT in ((pod["metadata"].get("annotations")) or {})
        if is_gated(pod) and not decided and not pod["metadata"].get("deletionTimestamp"):
            self.gated[key] = pod
        else:
            self.gated.pop(key, None)

    def _note_loss(self, agent: Key | None, key: str) -> None:
        """A placed Pod is going away while its node is not usable: remember it, to say
        where its replacement went."""
        usage = self.ledger.pods.get(key)
        if agent and usage and usage.placement and usage.node not in self.inventory.nodes:
            self.lost[agent].append(usage.node)

    def pod_gone(self, pod: dict[str, Any]) -> None:
        key, agent = pod_key(pod), agent_of(pod)
        self._note_loss(agent, key)
        self.ledger.remove(key)
        self.gated.pop(key, None)
        if agent:
            self.pods_of[agent].discard(key)
            if not self.pods_of[agent]:
                del self.pods_of[agent]
                self.refusals.pop(agent, None)
            self.agent_changed(agent)
        self.capacity_changed()

    def node_seen(self, node: dict[str, Any]) -> None:
        self.inventory.set_node(node, self.now())
        self.capacity_changed()

    def node_gone(self, name: str) -> None:
        self.inventory.remove_node(name)
        self.ledger.forget_node(name)

    def lease_seen(self, lease: dict[str, Any]) -> None:
        self.inventory.set_lease(lease, self.now())
        self.capacity_changed()

    def lease_gone(self, lease: dict[str, Any]) -> None:
        node = k.lease_node(lease)
        if node:
            self.inventory.remove_lease(node, self.now())

    # --- decisions ------------------------------------------------------------------------

    def wake(self, pod: dict[str, Any]) -> None:
        """A gated Pod appeared or changed: decide for it (called once the caches are full)."""
        key = pod_key(pod)
        if key in self.gated:
            self.queue.add(key)

    def capacity_changed(self) -> None:
        """Something may have freed room: try the Pods that were refused again."""
        if not self.refusals:
            return
        for key, pod in self.gated.items():
            if agent_of(pod) in self.refusals:
                self.queue.add_after(key, 0.5)  # coalesces a burst of changes

    def start(self) -> None:
        self._task = asyncio.create_task(self._work(), name="placement-worker")

    async def stop(self) -> None:
        self.queue.shutdown()
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self.place_one(key)
                self.queue.forget(key)
            except Exception:  # one Pod's trouble must not stop the placement of the others
                delay = self.queue.add_rate_limited(key)
                log.exception("placing pod %s failed; retrying in %.1fs", key, delay)
            finally:
                self.queue.done(key)

    async def place_one(self, key: str) -> None:
        pod = self.gated.get(key)
        agent_key = agent_of(pod) if pod else None
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

    async def _report_move(self, agent: AIAgent, key: Key, decision: Decision) -> None:
        """After a node failure, say what moved where (an Event on the AIAgent)."""
        if not self.lost.get(key):
            return
        old = self.lost[key].pop(0)
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
        for pod in sorted(self.pods_of.get(key, ())):
            usage = self.ledger.pods.get(pod)
            if usage is not None and usage.placement is not None:
                placed.append(usage.placement)
            elif pod in self.gated:
                waiting += 1
        return AgentPlacement(tuple(placed), waiting, self.refusals.get(key))
