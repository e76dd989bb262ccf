"""Records: what the caches keep of an object, and what is derived from it at index time."""

from __future__ import annotations

from typing import Any

from agentfleet.controllers.cache import (
    AgentRecord,
    ChildRecord,
    PeerTable,
    agent_owner_keys,
    content_digest,
    depends_on_peers,
    peer_of,
    replicas_managers,
)


def deployment(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "a",
            "namespace": "ns",
            "uid": "u",
            "resourceVersion": "5",
            "annotations": {"agentfleet.io/applied-hash": "h1"},
            "managedFields": [
                {"manager": "agentfleet", "operation": "Apply",
                 "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {}}}},
                {"manager": "kube-controller-manager", "operation": "Update",
                 "subresource": "status", "fieldsV1": {"f:status": {}}},
            ],
        },
        "spec": {"replicas": 2},
        "status": status,
    }  # fmt: skip


def test_a_record_keeps_what_decisions_read_and_packs_the_rest() -> None:
    record = ChildRecord.of(deployment(replicas=2))
    assert (record.kind, record.name, record.uid, record.applied_hash) == (
        "Deployment", "a", "u", "h1",
    )  # fmt: skip
    assert record.replicas_managers == ("agentfleet",)
    body = record.body()
    assert body["spec"]["replicas"] == 2
    assert "managedFields" not in body["metadata"], "never kept: large and unused"
    assert len(record.packed) < 400


def test_a_deployment_record_keeps_the_conditions_status_reads_and_drops_the_rest() -> None:
    said = {"status": "True", "reason": "R", "message": "m", "lastUpdateTime": "t"}
    record = ChildRecord.of(
        deployment(
            replicas=1,
            conditions=[
                {"type": "Available", **said},
                {"type": "Progressing", **said},
                {"type": "ReplicaFailure", **said},  # the cluster refuses its pods
            ],
        )
    )
    assert record.status is not None
    assert [(x["type"], x["message"]) for x in record.status["conditions"]] == [
        ("Progressing", "m"),
        ("ReplicaFailure", "m"),
    ]
    assert "lastUpdateTime" not in record.status["conditions"][0]


def test_the_peer_view_says_whose_identity_an_agent_runs_as() -> None:
    meta = {"name": "coder", "namespace": "ns"}
    assert peer_of({"metadata": meta, "spec": {}}).own_identity
    assert peer_of({"metadata": meta, "spec": {"serviceAccountName": "coder"}}).own_identity
    other = peer_of({"metadata": meta, "spec": {"serviceAccountName": "bot"}})
    assert (other.service_account, other.own_identity) == ("bot", False)


def test_the_digest_ignores_status_and_versions_but_not_the_spec() -> None:
    base = content_digest(deployment(replicas=1))
    moved = deployment(replicas=2)
    moved["metadata"]["resourceVersion"] = "6"
    assert content_digest(moved) == base
    edited = deployment(replicas=1)
    edited["spec"]["replicas"] = 3
    assert content_digest(edited) != base


def test_replicas_managers_names_everyone_who_owns_the_field() -> None:
    body = deployment()
    body["metadata"]["managedFields"].append(
        {"manager": "kube-controller-manager", "operation": "Update", "subresource": "scale",
         "fieldsV1": {"f:spec": {"f:replicas": {}}}}
    )  # fmt: skip
    assert replicas_managers(body) == ("agentfleet", "kube-controller-manager")


def test_an_agent_record_and_its_peer_view() -> None:
    body = {
        "metadata": {"name": "coder", "namespace": "ns", "uid": "u", "generation": 3},
        "spec": {"agentType": "coding", "mesh": {"mode": "ambient"}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "X"}]},
    }
    record = AgentRecord.of(body)
    assert record.generation == 3 and record.conditions == (("Ready", "True"),)
    peer = peer_of(body)
    assert (peer.agent_type, peer.service_account) == ("coding", "coder")
    assert depends_on_peers(peer)
    body["spec"]["mesh"] = {"mode": "none"}
    assert not depends_on_peers(peer_of(body))
    body["spec"].pop("mesh")
    assert not depends_on_peers(peer_of(body))


def test_a_shared_object_belongs_to_every_agent_owner() -> None:
    owners = [
        {"apiVersion": "agentfleet.io/v1alpha1", "kind": "AIAgent", "name": "a", "uid": "1"},
        {"apiVersion": "agentfleet.io/v1alpha1", "kind": "AIAgent", "name": "b", "uid": "2"},
        {"apiVersion": "v1", "kind": "Namespace", "name": "ns", "uid": "3"},
    ]
    body = {"metadata": {"name": "waypoint", "namespace": "ns", "ownerReferences": owners}}
    assert agent_owner_keys(body) == [("ns", "a"), ("ns", "b")]


def test_a_status_only_change_reuses_the_packed_content() -> None:
    first = ChildRecord.of(deployment(replicas=1))
    moved = deployment(replicas=2)
    moved["metadata"]["resourceVersion"] = "6"
    second = ChildRecord.of(moved, first)
    assert second.packed is first.packed, "no encoding, no compression"
    assert second.body()["status"] == {"replicas": 2}
    respecced = deployment(replicas=2)
    respecced["metadata"]["generation"] = 2
    respecced["spec"]["replicas"] = 5
    third = ChildRecord.of(respecced, second)
    assert third.packed is not second.packed and third.body()["spec"]["replicas"] == 5


def test_the_peer_table_tracks_changes_and_mesh_dependents_per_namespace() -> None:
    def peer(name: str, mesh: dict[str, Any] | None = None, kind: str = "coding") -> Any:
        spec = {"agentType": kind, **({"mesh": mesh} if mesh else {})}
        return peer_of({"metadata": {"name": name, "uid": name}, "spec": spec})

    index: dict[str, dict[str, Any]] = {}  # stands for kopf's peer index
    reads: list[str] = []

    def source(namespace: str) -> list[Any]:
        reads.append(namespace)
        return list(index.get(namespace, {}).values())

    def event(namespace: str, p: Any, mode: str | None = None, listing: bool = False) -> bool:
        name = p.name
        if p.agent_type == "gone":
            index[namespace].pop(name)
            return table.note((namespace, name), None, mode)
        index.setdefault(namespace, {})[name] = p  # kopf updates indices before handlers
        return table.note((namespace, name), p, mode, listing)

    table = PeerTable(source)
    index["ns"] = {"a": peer("a", {"mode": "ambient"}), "b": peer("b")}
    assert [p.name for p in table.peers("ns")] == ["a", "b"]
    # The initial listing: everything was in the index already, nothing to sort again.
    assert event("ns", peer("b"), listing=True)
    assert event("ns", peer("a", {"mode": "ambient"}), listing=True)
    assert not event("ns", peer("b")), "the same view again is no change"
    assert table.dependents("ns") == ["a"]
    assert table.peers("ns") is table.peers("ns") and reads == ["ns"]

    assert event("ns", peer("b", kind="testing"))
    assert [p.agent_type for p in table.peers("ns")] == ["coding", "testing"]
    assert event("ns", peer("a", {"mode": "none"}))
    assert table.dependents("ns") == []
    assert event("ns", peer("b", kind="gone"))
    assert [p.name for p in table.peers("ns")] == ["a"]
    # Without spec.mesh an agent depends on its peers only by the operator's default mode.
    event("ns", peer("d"), "ambient")
    assert table.dependents("ns") == ["d"]
    assert event("other", peer("c", {"mode": "sidecar"})) and table.dependents("other") == ["c"]
