"""What the informers keep, and how they read a watch stream."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp.base_protocol import BaseProtocol

from agentfleet.controllers.cache import ChildStore
from agentfleet.kube.informer import json_lines, path_namespace_prefix


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


def test_watch_lines_of_any_length_are_read_whole() -> None:
    async def read() -> list[bytes]:
        protocol = BaseProtocol(asyncio.get_running_loop())
        stream = aiohttp.StreamReader(protocol, 2**22, loop=asyncio.get_running_loop())
        big = b'{"type":"ADDED","object":{"x":"' + b"y" * 300_000 + b'"}}'
        stream.feed_data(b'{"type":"BOOKMARK"}\n' + big[:1000])
        stream.feed_data(big[1000:] + b"\n\n")
        stream.feed_eof()
        return [line async for line in json_lines(stream)]

    lines = asyncio.run(read())
    assert len(lines) == 2 and len(lines[1]) > 300_000


def test_deletions_found_on_a_relist_are_limited_to_the_listed_namespace() -> None:
    assert path_namespace_prefix("/api/v1/namespaces/team-a/services") == "team-a/"
    assert path_namespace_prefix("/apis/apps/v1/deployments") == ""
