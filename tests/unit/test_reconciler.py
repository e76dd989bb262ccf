"""The reconciler's write decisions, with fakes of our own Cache and Writer protocols.

The real API server is exercised in tests/integration; here the question is only which
writes a reconcile decides to make.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agentfleet.kube import Ref, Rejected
from agentfleet.reconciler import Key, Reconciler


class World:
    """Objects 'in the cluster', the cache view of them, and every write made."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.agents: dict[Key, dict[str, Any]] = {
            (body["metadata"]["namespace"], body["metadata"]["name"]): body
        }
        self.children: list[dict[str, Any]] = []
        self.writes: list[tuple[str, str]] = []
        self.reject: str | None = None
        self.reject_repair = False
        self.version = 0
        self.lagging = False  # the watch cache has not seen our writes yet
        self.terminating: set[str] = set()
        self.warnings: list[str] = []

    # Cache
    def agent(self, key: Key) -> dict[str, Any] | None:
        return self.agents.get(key)

    def owned(self, kind: str, key: Key) -> list[dict[str, Any]]:
        if self.lagging:
            return []
        return [
            c
            for c in self.children
            if c["kind"] == kind and c["metadata"]["ownerReferences"][0]["name"] == key[1]
        ]

    def namespace_terminating(self, namespace: str) -> bool:
        return namespace in self.terminating

    # Writer
    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.writes.append(("apply", obj["kind"]))
        if self.reject == obj["kind"]:
            raise Rejected(
                obj["kind"], obj["metadata"]["name"], 422, "spec.template: Invalid value"
            )
        stored = copy.deepcopy(obj)
        self.version += 1
        stored["metadata"].update(
            uid=f"uid-{obj['kind']}", generation=1, resourceVersion=str(self.version)
        )
        self.children = [
            c
            for c in self.children
            if (c["kind"], c["metadata"]["name"]) != (obj["kind"], obj["metadata"]["name"])
        ] + [stored]
        return stored

    async def repair(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.writes.append(("repair", obj["kind"]))
        if self.reject_repair:
            raise Rejected(obj["kind"], obj["metadata"]["name"], 422, "still invalid")
        self.reject = None
        return await self.apply(obj)

    async def patch_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        self.writes.append(("status", name))
        self.agents[(namespace, name)]["status"] = copy.deepcopy(status)
        return self.agents[(namespace, name)]

    async def delete(self, ref: Ref, uid: str) -> None:
        self.writes.append(("delete", ref.kind))
        self.children = [c for c in self.children if c["metadata"]["uid"] != uid]

    async def post_event(self, body: dict[str, Any], reason: str, message: str) -> None:
        self.warnings.append(reason)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_world(
    window: float = 0.0, clock: Clock | None = None, **spec: Any
) -> tuple[World, Reconciler]:
    body = {
        "apiVersion": "agentfleet.io/v1alpha1",
        "kind": "AIAgent",
        "metadata": {"name": "demo", "namespace": "ns", "uid": "u1", "generation": 1},
        "spec": {"agentType": "coding", "image": "example.com/a:1", **spec},
    }
    world = World(body)
    return world, Reconciler(world, world, status_window=window, clock=clock or Clock())


KEY = ("ns", "demo")


async def test_first_reconcile_applies_three_children_and_writes_status() -> None:
    world, reconciler = make_world()
    await reconciler.reconcile(KEY)
    assert world.writes == [
        ("apply", "ServiceAccount"),
        ("apply", "Service"),
        ("apply", "Deployment"),
        ("status", "demo"),
    ]


async def test_second_reconcile_of_an_unchanged_agent_writes_nothing() -> None:
    world, reconciler = make_world()
    await reconciler.reconcile(KEY)
    world.writes.clear()
    await reconciler.reconcile(KEY)
    assert world.writes == []


async def test_a_lagging_watch_cache_does_not_cause_a_second_apply() -> None:
    world, reconciler = make_world()
    world.lagging = True
    await reconciler.reconcile(KEY)
    await reconciler.reconcile(KEY)
    assert [w for w in world.writes if w[0] == "apply"] == [
        ("apply", "ServiceAccount"),
        ("apply", "Service"),
        ("apply", "Deployment"),
    ]
    world.lagging = False  # the cache catches up, and the watch events say so
    for child in world.children:
        reconciler.observe_child("ADDED", child)
    assert reconciler.applied == {}


async def test_spec_change_reapplies_only_what_changed() -> None:
    world, reconciler = make_world()
    await reconciler.reconcile(KEY)
    world.writes.clear()
    world.agents[KEY]["spec"]["image"] = "example.com/a:2"
    world.agents[KEY]["metadata"]["generation"] = 2
    await reconciler.reconcile(KEY)
    assert world.writes == [("apply", "Deployment"), ("status", "demo")]


async def test_deleted_child_is_recreated_even_before_any_reconcile_saw_it_cached() -> None:
    world, reconciler = make_world()
    await reconciler.reconcile(KEY)
    service = next(c for c in world.children if c["kind"] == "Service")
    world.children.remove(service)
    reconciler.observe_child("DELETED", service)
    world.writes.clear()
    await reconciler.reconcile(KEY)
    assert world.writes == [("apply", "Service")]


async def test_switching_to_an_existing_service_account_prunes_ours() -> None:
    world, reconciler = make_world()
    await reconciler.reconcile(KEY)
    world.writes.clear()
    world.agents[KEY]["spec"]["serviceAccountName"] = "shared"
    await reconciler.reconcile(KEY)
    assert ("delete", "ServiceAccount") in world.writes
    assert [c["kind"] for c in world.children] == ["Service", "Deployment"]


async def test_rejected_child_stalls_once_without_crashing() -> None:
    world, reconciler = make_world()
    world.reject = "Deployment"
    await reconciler.reconcile(KEY)
    stalled = next(c for c in world.agents[KEY]["status"]["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "ApplyFailed"
    assert "Invalid value" in stalled["message"]
    assert world.warnings == ["ApplyFailed"]
    await reconciler.reconcile(KEY)
    assert world.warnings == ["ApplyFailed"], "a second reconcile must not post the event again"


async def test_drift_that_apply_cannot_undo_is_repaired_with_a_merge_patch() -> None:
    world, reconciler = make_world()
    await reconciler.reconcile(KEY)
    service = next(c for c in world.children if c["kind"] == "Service")
    service["spec"]["ports"][1]["port"] = 9999  # re-keyed by someone else
    world.reject = "Service"  # as the API server does: the applied port now duplicates a name
    world.writes.clear()
    await reconciler.reconcile(KEY)
    assert world.writes[:3] == [("apply", "Service"), ("repair", "Service"), ("apply", "Service")]
    assert world.warnings == []


async def test_a_new_child_that_is_invalid_is_not_repaired_but_stalls() -> None:
    world, reconciler = make_world()
    world.reject = "Service"
    await reconciler.reconcile(KEY)
    assert ("repair", "Service") not in world.writes
    assert world.warnings == ["ApplyFailed"]


async def test_spec_the_models_refuse_is_reported_not_raised() -> None:
    world, reconciler = make_world(replicas="many")
    await reconciler.reconcile(KEY)
    assert world.writes == [("status", "demo")]
    ready = world.agents[KEY]["status"]["conditions"][0]
    assert ready["reason"] == "InvalidSpec" and "spec.replicas" in ready["message"]


@pytest.mark.parametrize("deleting", [True, False])
async def test_agent_being_deleted_or_gone_is_left_to_the_garbage_collector(deleting: bool) -> None:
    world, reconciler = make_world()
    if deleting:
        world.agents[KEY]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    else:
        world.agents.clear()
    await reconciler.reconcile(KEY)
    assert world.writes == []


async def test_terminating_namespace_stops_the_reconcile_without_writing_status() -> None:
    world, reconciler = make_world()

    async def refuse(obj: dict[str, Any]) -> dict[str, Any]:
        world.writes.append(("apply", obj["kind"]))
        raise Rejected(
            obj["kind"], "demo", 403, "being terminated", frozenset({"NamespaceTerminating"})
        )

    world.apply = refuse  # type: ignore[method-assign]
    await reconciler.reconcile(KEY)
    assert world.writes == [("apply", "ServiceAccount")]


def ready_deployment(world: World) -> None:
    """What the Deployment controller and kwok do: all replicas rolled out and available."""
    dep = next(c for c in world.children if c["kind"] == "Deployment")
    dep["status"] = {
        "observedGeneration": 1,
        "replicas": 1,
        "updatedReplicas": 1,
        "readyReplicas": 1,
        "availableReplicas": 1,
    }


async def test_status_writes_are_coalesced_within_the_window() -> None:
    clock = Clock()
    world, reconciler = make_world(window=1.0, clock=clock)
    assert await reconciler.reconcile(KEY) == 1.0  # children applied, status deferred
    assert ("status", "demo") not in world.writes
    clock.now += 0.4
    ready_deployment(world)
    assert await reconciler.reconcile(KEY) == pytest.approx(0.6)
    clock.now += 0.6
    assert await reconciler.reconcile(KEY) is None
    assert world.writes == [
        ("apply", "ServiceAccount"),
        ("apply", "Service"),
        ("apply", "Deployment"),
        ("status", "demo"),
    ]
    ready = world.agents[KEY]["status"]["conditions"][0]
    assert ready["status"] == "True", "the one status write carries the newest state"


async def test_problems_are_written_at_once_despite_the_window() -> None:
    world, reconciler = make_world(window=60.0)
    world.reject = "Deployment"
    assert await reconciler.reconcile(KEY) is None
    assert world.writes[-1] == ("status", "demo")


async def test_agents_in_a_terminating_namespace_cost_no_writes() -> None:
    world, reconciler = make_world()
    await reconciler.reconcile(KEY)
    world.writes.clear()
    world.terminating.add("ns")
    world.children = [c for c in world.children if c["kind"] != "Deployment"]
    await reconciler.reconcile(KEY)
    assert world.writes == []


async def test_a_changed_agent_reports_its_new_generation_at_once_then_coalesces() -> None:
    clock = Clock()
    world, reconciler = make_world(window=1.0, clock=clock)
    await reconciler.reconcile(KEY)
    clock.now += 1.0
    ready_deployment(world)
    await reconciler.reconcile(KEY)
    clock.now += 60
    world.writes.clear()
    world.agents[KEY]["spec"]["image"] = "example.com/a:2"
    world.agents[KEY]["metadata"]["generation"] = 2
    assert await reconciler.reconcile(KEY) is None
    assert world.writes == [("apply", "Deployment"), ("status", "demo")]
    assert world.agents[KEY]["status"]["observedGeneration"] == 2
    clock.now += 0.2
    ready_deployment(world)  # progress within the window waits for the window's end
    assert await reconciler.reconcile(KEY) == pytest.approx(0.8)
