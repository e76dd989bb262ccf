"""What the informers keep of the children they list and watch."""

from __future__ import annotations

from typing import Any

from agentfleet.controllers.cache import ChildStore


def child(name: str, *owners: tuple[str, bool], kind: str = "Service") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"u-{name}",
            "resourceVersion": "1",
            "ownerReferences": [
                {
                    "apiVersion": "agentfleet.io/v1alpha1",
                    "kind": "AIAgent",
                    "name": owner,
                    "uid": f"agent-{owner}",
                    **({"controller": True} if controller else {}),
                }
                for owner, controller in owners
            ],
        },
    }


def test_a_child_belongs_to_its_controller_and_moves_with_it() -> None:
    store = ChildStore()
    assert store.upsert(child("a", ("a", True)), shared=False) == (("ns", "a"),)
    assert [r.name for r in store.children("Service", ("ns", "a"))] == ["a"]
    assert store.children("Deployment", ("ns", "a")) == []
    # Re-owned (adopted by another agent): both owners hear of it, the old one loses it.
    assert store.upsert(child("a", ("b", True)), shared=False) == (("ns", "a"), ("ns", "b"))
    assert store.children("Service", ("ns", "a")) == []
    assert store.remove(child("a")) == (("ns", "b"),)
    assert store.by_owner == {}


def test_a_shared_object_belongs_to_every_agent_owner_and_others_are_ignored() -> None:
    store = ChildStore()
    owners = store.upsert(child("waypoint", ("a", False), ("b", False)), shared=True)
    assert owners == (("ns", "a"), ("ns", "b"))
    assert store.upsert(child("stray", ("a", False)), shared=False) == ()
    assert store.upsert(child("waypoint", ("b", False)), shared=True) == (
        ("ns", "a"),
        ("ns", "b"),
    )
    assert store.children("Service", ("ns", "a")) == []
