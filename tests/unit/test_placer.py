"""The placer's decisions and writes, with the simulated nodes and a fake of our own Pod
writer (the real API server is exercised in tests/integration/test_placement.py)."""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
from typing import Any

from agentfleet.api import constants as c
from agentfleet.api.models import AIAgent
from agentfleet.controllers.cache import Key
from agentfleet.controllers.placer import LOST_SECONDS, Placer
from agentfleet.controllers.reconciler import placed_condition
from agentfleet.kube.client import ApiError, Ref
from agentfleet.placement import labels as k
from agentfleet.placement import parse_placement
from agentfleet.render.children import desired_objects
from agentfleet.render.context import RenderContext
from tests.unit.conftest import agent_from
from tests.unit.placement.fleet import NOW, e2e_nodes
from tests.unit.test_reconciler import merge

NS = "team"


class Pods:
    """The Pods 'in the cluster' and the writes the placer makes to them."""

    def __init__(self) -> None:
        self.pods: dict[str, dict[str, Any]] = {}
        self.patches: list[str] = []
        self.events: list[tuple[str, str]] = []
        self.conflict_next = False
        self.versions = itertools.count(1)
        self.deleted: list[str] = []

    async def patch(self, ref: Ref, patch: dict[str, Any]) -> dict[str, Any]:
        key = f"{ref.namespace}/{ref.name}"
        self.patches.append(key)
        pod = self.pods[key]
        if (
            self.conflict_next
            or patch["metadata"]["resourceVersion"] != (pod["metadata"]["resourceVersion"])
        ):
            self.conflict_next = False
            raise ApiError("Pod", ref.name, 409, "the object has been modified", "Conflict")
        updated = merge(pod, patch)
        updated["metadata"]["resourceVersion"] = str(next(self.versions))
        self.pods[key] = updated
        return copy.deepcopy(updated)

    async def post_event(
        self, body: dict[str, Any], reason: str, message: str, type_: str = "Warning"
    ) -> None:
        self.events.append((reason, message))

    async def delete(self, ref: Ref, uid: str) -> None:
        key = f"{ref.namespace}/{ref.name}"
        if key in self.pods and self.pods[key]["metadata"].get("uid") == uid:
            self.deleted.append(key)
            del self.pods[key]


def replicaset(agent: AIAgent) -> dict[str, Any]:
    """The ReplicaSet the agent's Deployment made (the Deployment's uid is `deploy-<name>`)."""
    name = agent.metadata.name
    return {
        "metadata": {
            "name": f"{name}-abc",
            "namespace": NS,
            "uid": f"rs-{name}",
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": name,
                    "uid": f"deploy-{name}",
                    "controller": True,
                }
            ],
        }
    }


class World:
    def __init__(self) -> None:
        self.pods = Pods()
        self.agents: dict[Key, AIAgent] = {}
        self.changed: list[Key] = []
        self.placer = self.new_placer()

    def new_placer(self) -> Placer:
        """A placer whose watches have listed the simulated nodes and what `pods` holds."""
        placer = Placer(
            self.pods,
            self.agents.get,
            self.changed.append,
            now=lambda: NOW,
            deployment_uid=lambda key: f"deploy-{key[1]}" if key in self.agents else None,
        )
        for node in e2e_nodes():
            placer.node_seen(node)
        for agent in self.agents.values():
            placer.replicaset_event("ADDED", replicaset(agent))
        for pod in self.pods.pods.values():
            placer.pod_seen(copy.deepcopy(pod))
        placer.become_synced()
        return placer

    def agent(self, name: str, **gpu: Any) -> AIAgent:
        agent = agent_from(
            {"agentType": "coding", "image": "example.com/a:1", "gpu": gpu},
            name=name,
            namespace=NS,
        )
        self.agents[(NS, name)] = agent
        self.placer.replicaset_event("ADDED", replicaset(agent))
        return agent

    def pod_of(self, agent: AIAgent, index: int = 0) -> dict[str, Any]:
        """A Pod made from the agent's pod template, as the ReplicaSet creates it."""
        (deployment,) = [
            o for o in desired_objects(agent, RenderContext()) if o["kind"] == "Deployment"
        ]
        template = copy.deepcopy(deployment["spec"]["template"])
        name = f"{agent.metadata.name}-{index}"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                **template["metadata"],
                "name": name,
                "namespace": NS,
                "uid": f"pod-{name}",
                "resourceVersion": str(next(self.pods.versions)),
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": f"{agent.metadata.name}-abc",
                        "uid": f"rs-{agent.metadata.name}",
                        "controller": True,
                    }
                ],
            },
            "spec": template["spec"],
            "status": {"phase": "Pending"},
        }
        self.pods.pods[f"{NS}/{name}"] = pod
        self.placer.pod_seen(copy.deepcopy(pod))
        return pod

    async def decide(self, pod: dict[str, Any]) -> None:
        key = f"{NS}/{pod['metadata']['name']}"
        await self.placer.place_one(key)

    def bind_all(self) -> None:
        """What the watch would bring back: every patched Pod, bound by the scheduler."""
        for pod in self.pods.pods.values():
            if not pod["spec"].get("schedulingGates"):
                placement = parse_placement(pod["metadata"]["annotations"][k.PLACEMENT])
                pod["spec"]["nodeName"] = placement.node
            self.placer.pod_seen(copy.deepcopy(pod))


async def test_a_gated_pod_gets_its_decision_a_pinned_affinity_and_no_gate_in_one_patch() -> None:
    world = World()
    agent = world.agent("coder", count=1, vram="24Gi")
    pod = world.pod_of(agent)
    assert pod["spec"]["schedulingGates"] == [{"name": c.SCHEDULING_GATE}]
    await world.decide(pod)
    assert world.pods.patches == [f"{NS}/coder-0"]
    placed = world.pods.pods[f"{NS}/coder-0"]
    assert placed["spec"]["schedulingGates"] == []
    decision = parse_placement(placed["metadata"]["annotations"][k.PLACEMENT])
    assert decision.node in {"gpu-a100-1", "gpu-h100-1"} and len(decision.gpus) == 1
    terms = placed["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert all(
        {"key": "metadata.name", "operator": "In", "values": [decision.node]} in t["matchFields"]
        for t in terms
    )
    assert world.placer.state((NS, "coder")).placed == (decision,)
    assert (NS, "coder") in world.changed


async def test_forty_agents_asking_16gi_of_a_shared_gpu_get_exactly_one() -> None:
    world = World()
    for i in range(40):
        pod = world.pod_of(world.agent(f"doc-{i}", count=1, vram="16Gi", sharing="shared"))
        await world.decide(pod)
    placed = [key for key in world.placer.pods_of if world.placer.state(key).placed]
    refused = {key: world.placer.state(key).refusal for key in world.placer.pods_of}
    assert len(placed) == 1
    messages = {r.message for r in refused.values() if r is not None}
    assert len(messages) == 1
    (message,) = messages
    assert "no node has 16Gi free VRAM" in message and "gpu-l4-timeslice-1" in message
    assert {r.reason for r in refused.values() if r} == {"InsufficientVRAM"}
    assert all(world.pods.pods[f"{NS}/doc-{i}-0"]["spec"]["schedulingGates"] for i in range(1, 40))


async def test_a_pod_going_away_frees_room_for_the_refused() -> None:
    world = World()
    first = world.pod_of(world.agent("a", count=1, vram="16Gi", sharing="shared"))
    second = world.pod_of(world.agent("b", count=1, vram="16Gi", sharing="shared"))
    await world.decide(first)
    await world.decide(second)
    assert world.placer.state((NS, "b")).refusal is not None
    world.bind_all()
    world.placer.pod_gone(world.pods.pods.pop(f"{NS}/a-0"))
    assert f"{NS}/b-0" in world.placer.queue._timers, "retried when capacity appears"
    await world.decide(second)
    assert world.placer.state((NS, "b")).placed


async def test_the_books_survive_a_restart() -> None:
    """A new placer fed the Pods as they are (decisions in annotations) never re-uses a GPU."""
    world = World()
    for i in range(16):  # 16 whole GPUs: 8 on the A100, 8 on the H100
        await world.decide(world.pod_of(world.agent(f"e-{i}", count=1, vram="40Gi")))
    world.bind_all()
    restarted = world.placer = world.new_placer()
    late = world.pod_of(world.agent("late", count=1, vram="40Gi"))
    await world.decide(late)
    refusal = restarted.state((NS, "late")).refusal
    assert refusal is not None and refusal.reason == "InsufficientGPU"


async def test_a_conflicting_write_undoes_the_booking() -> None:
    world = World()
    pod = world.pod_of(world.agent("x", count=8, vram="40Gi"))
    world.pods.conflict_next = True
    await world.decide(pod)
    assert world.placer.state((NS, "x")).placed == ()
    other = world.pod_of(world.agent("y", count=8, vram="40Gi"))
    await world.decide(other)
    third = world.pod_of(world.agent("z", count=8, vram="40Gi"))
    await world.decide(third)
    assert world.placer.state((NS, "y")).placed and world.placer.state((NS, "z")).placed, (
        "the failed write of x holds no GPUs"
    )


async def test_a_replica_lost_with_its_node_is_placed_again_and_the_move_is_told() -> None:
    world = World()
    agent = world.agent("mover", count=1, vram="40Gi")
    pod = world.pod_of(agent)
    await world.decide(pod)
    world.bind_all()
    old = world.placer.state((NS, "mover")).placed[0].node
    dead = next(n for n in e2e_nodes() if n["metadata"]["name"] == old)
    dead["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    world.placer.node_seen(dead)
    evicted = world.pods.pods.pop(f"{NS}/mover-0")
    evicted["metadata"]["deletionTimestamp"] = "2026-11-30T12:01:00Z"
    world.placer.pod_seen(evicted)
    world.placer.pod_gone(evicted)
    replacement = world.pod_of(agent, index=1)
    await world.decide(replacement)
    (placed,) = world.placer.state((NS, "mover")).placed
    assert placed.node != old
    ((reason, message),) = world.pods.events
    assert reason == "Replaced" and old in message and placed.node in message


# --- the books trust only what the operator made ------------------------------------------


def forged_pod(name: str, agent: str, **spec: Any) -> dict[str, Any]:
    """A bare Pod anyone with Pod rights can create: labelled like a GPU agent's, no owner."""
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"forged-{name}",
            "resourceVersion": "1",
            "labels": {c.LABEL_GPU: "true", c.LABEL_INSTANCE: agent},
            "annotations": {},
        },
        "spec": {
            "containers": [{"name": "x", "resources": {"limits": {"nvidia.com/gpu": "8"}}}],
            **spec,
        },
        "status": {"phase": "Pending"},
    }


async def test_a_forged_agent_pod_is_never_placed_and_its_claim_is_ignored() -> None:
    world = World()
    agent = world.agent("real", count=1, vram="40Gi")
    claim = '{"agent":"team/real","gpus":[0,1,2,3,4,5,6,7],"node":"gpu-a100-1","vramMiB":0}'
    for node in ("gpu-a100-1", "gpu-h100-1"):
        gated = forged_pod(f"gated-{node}", "real", schedulingGates=[{"name": c.SCHEDULING_GATE}])
        gated["metadata"]["annotations"][k.PLACEMENT] = claim.replace("gpu-a100-1", node)
        world.placer.pod_seen(gated)
        await world.decide(gated)
    assert world.pods.patches == [], "a Pod the operator did not make was given a decision"
    assert not world.placer.ledger.nodes, "a forged decision was booked"
    await world.decide(world.pod_of(agent))
    assert world.placer.state((NS, "real")).placed


async def test_a_bound_gpu_pod_that_is_not_an_agent_holds_its_gpus() -> None:
    world = World()
    for node in ("gpu-a100-1", "gpu-h100-1"):
        bound = forged_pod(f"train-{node}", "none", nodeName=node)
        bound["metadata"]["labels"] = {}  # a plain training job
        world.placer.pod_seen(bound)
    agent = world.agent("late", count=1, vram="40Gi")
    await world.decide(world.pod_of(agent))
    refusal = world.placer.state((NS, "late")).refusal
    assert refusal is not None and refusal.reason == "InsufficientGPU", refusal


async def test_nothing_is_classified_before_every_watch_has_listed() -> None:
    """The Pods arrive before their ReplicaSet (two watches, no order between them): the books
    are built only once both listed, and then the Pod's decision counts."""
    world = World()
    agent = world.agent("x", count=1, vram="40Gi")
    await world.decide(world.pod_of(agent))
    world.bind_all()
    placer = Placer(
        world.pods, world.agents.get, world.changed.append, now=lambda: NOW,
        deployment_uid=lambda key: f"deploy-{key[1]}",
    )  # fmt: skip
    for pod in world.pods.pods.values():
        placer.pod_seen(copy.deepcopy(pod))
    assert not placer.ledger.pods and not placer.genuine
    placer.replicaset_event("ADDED", replicaset(agent))
    placer.become_synced()
    (usage,) = placer.ledger.pods.values()
    assert usage.placement is not None and placer.genuine == {f"{NS}/x-0": (NS, "x")}


async def test_a_deployment_that_appears_later_makes_its_pods_count() -> None:
    world = World()
    agent = world.agent("x", count=1, vram="40Gi")
    known: dict[Key, str] = {}
    world.placer.deployment_uid = known.get
    pod = world.pod_of(agent)
    assert f"{NS}/x-0" not in world.placer.gated
    known[(NS, "x")] = "deploy-x"
    world.placer.agent_identity_changed([(NS, "x")])
    assert f"{NS}/x-0" in world.placer.gated
    await world.decide(pod)
    assert world.placer.state((NS, "x")).placed


async def test_a_decided_pod_the_scheduler_cannot_bind_is_replaced_after_a_while() -> None:
    world = World()
    agent = world.agent("x", count=1, vram="40Gi")
    await world.decide(world.pod_of(agent))
    pod = world.pods.pods[f"{NS}/x-0"]
    pod["status"]["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/9 nodes are available: 1 Insufficient nvidia.com/gpu.",
            "lastTransitionTime": "2026-11-30T11:59:30Z",  # 30 s before NOW
        }
    ]
    world.placer.pod_seen(copy.deepcopy(pod))
    state = world.placer.state((NS, "x"))
    assert state.stuck and not state.placed
    placed = placed_condition(state)
    assert (placed.ok, placed.reason) == (False, "Unschedulable")
    assert "Insufficient nvidia.com/gpu" in placed.message and "after 60s" in placed.message
    await world.placer.place_one(f"{NS}/x-0")
    assert world.pods.deleted == [], "replaced before its time"
    assert f"{NS}/x-0" in world.placer.queue._timers
    world.placer.now = lambda: NOW + datetime.timedelta(seconds=31)
    await world.placer.place_one(f"{NS}/x-0")
    assert world.pods.deleted == [f"{NS}/x-0"]
    ((reason, message),) = world.pods.events
    assert reason == "Unschedulable" and "to be placed again" in message
async def evict_from_a_dead_node(world: World, agent: AIAgent) -> str:
    """Place the agent's first replica, fail its node and evict the Pod, as the node
    lifecycle controller does; returns the dead node."""
    pod = world.pod_of(agent)
    await world.decide(pod)
    world.bind_all()
    old = world.placer.state((NS, agent.metadata.name)).placed[0].node
    dead = next(n for n in e2e_nodes() if n["metadata"]["name"] == old)
    dead["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    world.placer.node_seen(dead)
    evicted = world.pods.pods.pop(f"{NS}/{pod['metadata']['name']}")
    evicted["metadata"]["deletionTimestamp"] = "2026-11-30T12:01:00Z"
    world.placer.pod_seen(evicted)
    world.placer.pod_gone(evicted)
    return old


async def test_a_deleted_agent_leaves_no_loss_behind() -> None:
    world = World()
    agent = world.agent("gone", count=1, vram="40Gi")
    await evict_from_a_dead_node(world, agent)
    assert world.placer.lost
    world.placer.agent_gone((NS, "gone"))
    assert world.placer.lost == {}


async def test_a_loss_never_replaced_is_forgotten_and_never_told_later() -> None:
    """Scaled down after its node failed: the replica is never placed again. Much later a
    scale-up is not a move from the dead node, and the books of losses stay small."""
    world = World()
    agent = world.agent("shrunk", count=1, vram="40Gi")
    await evict_from_a_dead_node(world, agent)
    later = NOW + datetime.timedelta(seconds=LOST_SECONDS + 1)
    world.placer.now = lambda: later
    world.placer.inventory.refresh(later)
    await world.decide(world.pod_of(agent, index=1))
    assert world.placer.state((NS, "shrunk")).placed
    assert world.pods.events == [] and world.placer.lost == {}


async def test_a_pod_gone_leaves_no_retry_or_failure_count_behind() -> None:
    """A Pod whose placement write keeps failing is deleted: its backoff state goes with it
    (the real worker, the real queue)."""
    world = World()
    world.pod_of(world.agent("flaky", count=1, vram="24Gi"))
    key = f"{NS}/flaky-0"

    async def refuse(ref: Ref, patch: dict[str, Any]) -> dict[str, Any]:
        raise ApiError("Pod", ref.name, 500, "etcd is busy", "InternalError")

    world.pods.patch = refuse  # type: ignore[method-assign]
    world.placer.start()
    try:
        world.placer.queue.add(key)
        for _ in range(200):
            if world.placer.queue._failures.get(key):
                break
            await asyncio.sleep(0.01)
        assert world.placer.queue._failures.get(key) == 1
        world.placer.pod_gone(world.pods.pods.pop(key))
        assert key not in world.placer.queue._failures
        assert key not in world.placer.queue._timers
    finally:
        await world.placer.stop()
