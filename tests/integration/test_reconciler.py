"""The reconciler's preconditions against the real API server, with the operator's own client
and identity (the RBAC of manifests/operator). The reconciler is driven directly, with a cache
that is a snapshot of the cluster taken a moment ago: exactly what an informer that has not yet
seen the latest events holds. The agents carry a shard label, so the suite's operator leaves
them alone.

- Server-side apply carries the child's uid: a child someone deleted and re-created with the
  same name is never written, the agent reports the conflict instead.
- The `Queued` status is written with the resourceVersion it was computed from: it never
  overwrites a status a reconcile wrote meanwhile.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import yaml

from agentfleet.api import constants as c
from agentfleet.api.config import OperatorConfig
from agentfleet.controllers.cache import AgentRecord, ChildRecord
from agentfleet.controllers.reconciler import Reconciler
from agentfleet.kube.client import ApiError, Kube, Target, connect
from agentfleet.render.children import CHILD_KINDS, ChildKind
from agentfleet.render.context import Peer
from tests.conftest import SHARD_LABEL, Cluster, operator_kubeconfig

pytestmark = pytest.mark.cluster

Key = tuple[str, str]


@pytest_asyncio.fixture(loop_scope="function")
async def kube(cluster: Cluster) -> AsyncIterator[Kube]:
    path = operator_kubeconfig(cluster, name="reconciler-test")
    async with await connect(Target(kubeconfig=str(path))) as kube:
        yield kube


class Snapshot:
    """The operator's cache (reconciler.Cache) as it was when `take` ran."""

    def __init__(self) -> None:
        self.agents: dict[Key, dict[str, Any]] = {}
        self.kids: dict[tuple[str, Key], list[dict[str, Any]]] = {}

    @classmethod
    def take(cls, cluster: Cluster, key: Key) -> Snapshot:
        snapshot = cls()
        snapshot.agents[key] = live(cluster, c.PLURAL, *key)
        rows = {row.kind: row for row in CHILD_KINDS if not row.optional}
        resources = ",".join(row.resource for row in rows.values())
        found = cluster.kubectl("get", resources, key[1], "-n", key[0], "-o", "json",
                                "--ignore-not-found").stdout  # fmt: skip
        listed = json.loads(found or '{"items": []}')
        for child in listed.get("items", [listed]):
            snapshot.kids[(child["kind"], key)] = [child]
        return snapshot

    def agent(self, key: Key) -> AgentRecord | None:
        body = self.agents.get(key)
        return AgentRecord.of(body) if body else None

    def children(self, kind: str, key: Key) -> list[ChildRecord]:
        return [ChildRecord.of(body) for body in self.kids.get((kind, key), [])]

    def namespace_terminating(self, namespace: str) -> bool:
        return False

    def served(self, row: ChildKind) -> bool:
        return not row.optional

    def peers(self, namespace: str) -> tuple[Peer, ...]:
        return ()

    def marked_service_account(self, namespace: str, name: str) -> bool:
        return False


def create_agent(cluster: Cluster, namespace: str, name: str, **spec: Any) -> Key:
    body = {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": {SHARD_LABEL: "direct"}},
        "spec": {"agentType": "coding", "image": "example.com/coding:1", "replicas": 1, **spec},
    }
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))
    return namespace, name


def live(cluster: Cluster, kind: str, namespace: str, name: str) -> dict[str, Any]:
    found = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout
    return dict(json.loads(found))


def writers(cluster: Cluster, kind: str, namespace: str, name: str) -> set[str]:
    """The field managers that wrote the object (managedFields)."""
    found = cluster.kubectl("get", kind, name, "-n", namespace, "--show-managed-fields",
                            "-o", "json").stdout  # fmt: skip
    return {entry["manager"] for entry in json.loads(found)["metadata"]["managedFields"]}


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((x for x in status.get("conditions", []) if x["type"] == kind), {})


@pytest.mark.asyncio(loop_scope="function")
async def test_a_child_deleted_and_recreated_by_someone_else_is_never_written(
    cluster: Cluster, crd: None, namespace: str, kube: Kube
) -> None:
    key = create_agent(cluster, namespace, "uid")
    reconciler = Reconciler(kube, Snapshot.take(cluster, key), OperatorConfig(), 0)
    await reconciler.reconcile(key)
    ours = live(cluster, "deployment", namespace, "uid")
    assert ours["metadata"]["ownerReferences"][0]["kind"] == c.KIND
    stale = Snapshot.take(cluster, key)  # holds our Deployment, uid and all

    # Someone replaces the Deployment with their own; then the agent's image changes, so the
    # next reconcile must apply the Deployment while its cache still holds the old one.
    cluster.kubectl("delete", "deployment", "uid", "-n", namespace, "--wait=true")
    cluster.kubectl("create", "deployment", "uid", "-n", namespace, "--image=example.com/theirs:1")
    theirs = live(cluster, "deployment", namespace, "uid")
    create_agent(cluster, namespace, "uid", image="example.com/coding:2")
    stale.agents[key] = live(cluster, "aia", namespace, "uid")

    # The precondition itself: the API server refuses an apply carrying the old uid.
    desired = {k: ours[k] for k in ("apiVersion", "kind")}
    desired["metadata"] = {"name": "uid", "namespace": namespace}
    with pytest.raises(ApiError) as refused:
        await kube.apply(desired, "deployments", ours["metadata"]["uid"])
    assert refused.value.uid_mismatch, refused.value

    # The reconciler: the apply is refused, it looks again and reports whose object it is.
    reconciler = Reconciler(kube, stale, OperatorConfig(), 0)
    result = await reconciler.reconcile(key)
    after = live(cluster, "deployment", namespace, "uid")
    # Unchanged but for the status the deployment controller keeps writing (so not by
    # resourceVersion): their spec and generation, and no field manager of ours.
    assert after["metadata"]["uid"] == theirs["metadata"]["uid"]
    assert after["metadata"]["generation"] == theirs["metadata"]["generation"]
    assert after["spec"] == theirs["spec"]
    assert "ownerReferences" not in after["metadata"]
    assert not {m for m in writers(cluster, "deployment", namespace, "uid") if "agentfleet" in m}
    status = live(cluster, "aia", namespace, "uid")["status"]
    stalled = condition(status, c.COND_STALLED)
    assert (stalled["status"], stalled["reason"]) == ("True", "ChildConflict"), status
    assert (
        "Deployment" in stalled["message"] and "not managed by this AIAgent" in stalled["message"]
    )
    assert result.retry  # and it tries again later, in case the clash is resolved


@pytest.mark.asyncio(loop_scope="function")
async def test_the_queued_status_never_overwrites_a_status_written_meanwhile(
    cluster: Cluster, crd: None, namespace: str, kube: Kube
) -> None:
    config = OperatorConfig()
    # Shown on an agent nobody reached yet: Reconciling=True, reason Queued.
    waiting = create_agent(cluster, namespace, "waiting")
    await Reconciler(kube, Snapshot.take(cluster, waiting), config, 0).acknowledge(waiting, 7)
    queued = condition(live(cluster, "aia", namespace, "waiting")["status"], c.COND_RECONCILING)
    assert (queued["status"], queued["reason"]) == ("True", "Queued"), queued

    # Read before a reconcile writes the real status; acknowledged after: refused, and kept.
    key = create_agent(cluster, namespace, "raced")
    before = Snapshot.take(cluster, key)
    await Reconciler(kube, Snapshot.take(cluster, key), config, 0).reconcile(key)
    written = live(cluster, "aia", namespace, "raced")
    assert condition(written["status"], c.COND_RECONCILING).get("reason") != "Queued"
    await Reconciler(kube, before, config, 0).acknowledge(key, 7)
    after = live(cluster, "aia", namespace, "raced")
    assert after["status"] == written["status"]
    assert after["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]
