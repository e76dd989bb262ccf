"""The reconciler's write decisions, with fakes of our own Cache and Writer protocols.

The real API server is exercised in tests/integration; here the question is only which
writes a reconcile decides to make, and what it reports.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from agentfleet.api import constants as c
from agentfleet.api.config import OperatorConfig, Policy
from agentfleet.api.models import AIAgent
from agentfleet.controllers.cache import AgentRecord, ChildRecord, controller_key, peer_of
from agentfleet.controllers.reconciler import SETTLE_WINDOW, Key, Reconciler, classify
from agentfleet.controllers.status import status_patch
from agentfleet.kube.client import ApiError, Ref
from agentfleet.render.children import ChildKind
from agentfleet.render.context import Peer


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386, as the API server applies a merge patch."""
    result = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


class World:
    """Objects 'in the cluster', the cache view of them, and every write made."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.agents: dict[Key, dict[str, Any]] = {
            (body["metadata"]["namespace"], body["metadata"]["name"]): body
        }
        self.objects: list[dict[str, Any]] = []  # every child-like object, ours or not
        self.writes: list[tuple[str, str]] = []
        self.reads = 0
        self.reject: dict[str, ApiError] = {}  # kind -> error for its next applies
        self.reject_repair = False
        self.version = 0
        self.lagging = False  # the watch cache has not seen our writes yet
        self.terminating: set[str] = set()
        self.unserved: set[str] = set()
        self.events: list[tuple[str, str]] = []
        self.stale: list[dict[str, Any]] = []  # still in the cache, no longer in the cluster
        self.stale_agent: dict[str, Any] | None = None  # the cache's older copy of the agent
        self.peer_reads = 0
        self.marked: set[tuple[str, str]] = set()  # ServiceAccounts marked for agents

    # Cache
    def agent(self, key: Key) -> AgentRecord | None:
        body = self.stale_agent or self.agents.get(key)
        return AgentRecord.of(body) if body else None

    def children(self, kind: str, key: Key) -> list[ChildRecord]:
        if self.lagging:
            return []
        return [
            ChildRecord.of(o)
            for o in [*self.objects, *self.stale]
            if o["kind"] == kind and controller_key(o) == key
        ]

    def namespace_terminating(self, namespace: str) -> bool:
        return namespace in self.terminating

    def served(self, row: ChildKind) -> bool:
        return row.kind not in self.unserved

    def peers(self, namespace: str) -> tuple[Peer, ...]:
        self.peer_reads += 1
        return tuple(sorted((peer_of(b) for b in self.agents.values()), key=lambda p: p.name))

    def marked_service_account(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self.marked

    # Writer
    def _find(self, kind: str, name: str) -> dict[str, Any] | None:
        return next(
            (o for o in self.objects if (o["kind"], o["metadata"]["name"]) == (kind, name)), None
        )

    async def apply(
        self,
        obj: dict[str, Any],
        plural: str,
        uid: str | None,
        manager: str = c.FIELD_MANAGER,
        force: bool = True,
    ) -> dict[str, Any]:
        self.writes.append(("apply", obj["kind"]))
        if obj["kind"] in self.reject:
            raise self.reject[obj["kind"]]
        existing = self._find(obj["kind"], obj["metadata"]["name"])
        name = obj["metadata"]["name"]
        # As the API server answers (tests/integration/test_reconciler.py checks it there).
        if uid and existing is None:
            raise ApiError(obj["kind"], name, 409, "uid mismatch: no existing object", "Conflict")
        if uid and existing is not None and existing["metadata"]["uid"] != uid:
            message = f'metadata.uid: Invalid value: "{uid}": field is immutable'
            fields = frozenset({"metadata.uid"})
            raise ApiError(obj["kind"], name, 422, message, "Invalid", fields=fields)
        return self._store(obj, existing)

    def _store(
        self, obj: dict[str, Any], existing: dict[str, Any] | None, whole: bool = False
    ) -> dict[str, Any]:
        # Like an apply, fields of the live object that `obj` does not mention survive.
        base = {} if whole else {k: v for k, v in (existing or {}).items() if k != "status"}
        stored = merge(base, obj)
        self.version += 1
        uid = existing["metadata"]["uid"] if existing else f"uid-{uuid.uuid4().hex[:6]}"
        stored["metadata"].update(uid=uid, resourceVersion=str(self.version))
        if stored["apiVersion"] != "v1":  # as the API server: core v1 kinds have none
            stored["metadata"]["generation"] = stored["metadata"].get("generation") or 1
        if existing:
            self.objects.remove(existing)
        self.objects.append(stored)
        return copy.deepcopy(stored)

    async def get(self, ref: Ref, metadata_only: bool = False) -> dict[str, Any] | None:
        self.reads += 1
        found = self._find(ref.kind, ref.name)
        return copy.deepcopy(found) if found else None

    async def patch(self, ref: Ref, patch: Any, json_patch: bool = False) -> dict[str, Any]:
        """A merge patch replaces what it names (lists whole); a JSON patch here only ever
        drops a managedFields entry, which this world does not keep."""
        existing = self._find(ref.kind, ref.name)
        assert existing is not None
        if json_patch:
            self.writes.append(("json-patch", ref.kind))
            return copy.deepcopy(existing)
        self.writes.append(("patch", ref.kind))
        if self.reject_repair:
            raise ApiError(ref.kind, ref.name, 422, "still invalid", "Invalid")
        self.reject.pop(ref.kind, None)
        return self._store(merge(existing, patch), existing, whole=True)

    async def patch_status(
        self,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        agent = self.agents[(namespace, name)]
        if resource_version and agent["metadata"].get("resourceVersion") != resource_version:
            raise ApiError(c.KIND, name, 409, "the object has been modified", "Conflict")
        self.writes.append(("status", name))
        agent["status"] = merge(agent.get("status") or {}, patch)
        self.version += 1
        agent["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(agent)

    async def delete(self, ref: Ref, uid: str) -> None:
        self.writes.append(("delete", ref.kind))
        self.objects = [o for o in self.objects if o["metadata"]["uid"] != uid]

    async def post_event(
        self, body: dict[str, Any], reason: str, message: str, type_: str = "Warning"
    ) -> None:
        self.events.append((type_, reason))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_world(
    window: float = 0.0,
    clock: Clock | None = None,
    config: OperatorConfig | None = None,
    **spec: Any,
) -> tuple[World, Reconciler]:
    body = {
        "apiVersion": "agentfleet.io/v1alpha1",
        "kind": "AIAgent",
        "metadata": {"name": "demo", "namespace": "ns", "uid": "u1", "generation": 1},
        "spec": {"agentType": "coding", "image": "example.com/a:1", **spec},
    }
    world = World(body)
    reconciler = Reconciler(
        world, world, config or OperatorConfig(), status_window=window, clock=clock or Clock()
    )
    return world, reconciler


KEY = ("ns", "demo")
CHILDREN = [("apply", "ServiceAccount"), ("apply", "Service"), ("apply", "Deployment")]


def conditions(world: World) -> dict[str, tuple[str, str]]:
    status = world.agents[KEY]["status"]
    return {x["type"]: (x["status"], x["reason"]) for x in status["conditions"]}


def message_of(world: World, kind: str) -> str:
    status = world.agents[KEY]["status"]
    return next(x["message"] for x in status["conditions"] if x["type"] == kind)


def foreign(kind: str, name: str = "demo", **meta: Any) -> dict[str, Any]:
    api = "apps/v1" if kind == "Deployment" else "v1"
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": name, "namespace": "ns", "uid": f"theirs-{kind}", **meta},
    }


async def test_first_reconcile_reads_applies_three_children_and_writes_status() -> None:
    world, reconciler = make_world()
    await reconciler.reconcile(KEY)
    assert world.writes == [*CHILDREN, ("status", "demo")]
    assert world.reads == 3, "a child not in the cache is looked up before it is created"


async def test_second_reconcile_of_an_unchanged_agent_writes_and_reads_nothing() -> None:
    world, reconciler = make_world()
    await reconciler.reconcile(KEY)
    world.writes.clear()
    reads = world.reads
    await reconciler.reconcile(KEY)
    assert world.writes == []
    assert world.reads == reads


async def test_a_lagging_watch_cache_does_not_cause_a_second_apply() -> None:
    world, reconciler = make_world()
    world.lagging = True
    await reconciler.reconcile(KEY)
    await reconciler.reconcile(KEY)
    assert [w for w in world.writes if w[0] == "apply"] == CHILDREN
    world.lagging = False  # the cache catches up, and the watch events say so
    for child in world.objects:
        reconciler.observe_child("ADDED", KEY, child)
    assert reconciler.memos[KEY].applied == {}


async def test_updates_carry_the_uid_of_the_child_we_know() -> None:
    world, reconciler = make_world()
    await reconciler.reconcile(KEY)
    seen: list[str | None] = []
    original = world.apply

    async def spy(obj: dict[str, Any], plural: str, uid: str | None, **kw: Any) -> dict[str, Any]:
        seen.append(uid)
        return await original(obj, plural, uid, **kw)

    world.apply = spy  # type: ignore[method-assign]
    world.agents[KEY]["spec"]["image"] = "example.com/a:2"
    world.agents[KEY]["metadata"]["generation"] = 2
    await reconciler.reconcile(KEY)
    deployment = next(o for o in world.objects if o["kind"] == "Deployment")
    assert seen == [deployment["metadata"]["uid"]]


async def test_spec_change_reapplies_only_what_changed() -> None:
    world, reconciler = make_world()
    await reconciler.reconcile(KEY)
    ready_deployment(world)
    await reconciler.reconcile(KEY)
    world.writes.clear()
    world.agents[KEY]["spec"]["image"] = "example.com/a:2"
    world.agents[KEY]["metadata"]["generation"] = 2
    await reconciler.reconcile(KEY)
    assert world.writes == [("apply", "Deployment")], "its status waits for the rollout"
    ready_deployment(world, generation=2)
    await reconciler.reconcile(KEY)
    assert world.writes == [("apply", "Deployment"), ("status", "demo")]


async def test_deleted_child_is_recreated_even_before_any_reconcile_saw_it_cached() -> None:
    world, reconciler = make_world()
    await reconciler.reconcile(KEY)
    service = next(o for o in world.objects if o["kind"] == "Service")
    world.objects.remove(service)
    reconciler.observe_child("DELETED", KEY, service)
    world.writes.clear()
    await reconciler.reconcile(KEY)
    assert world.writes == [("apply", "Service")]


@pytest.mark.parametrize("kind", ["Service", "ServiceAccount", "Deployment"])
async def test_an_object_we_did_not_create_is_never_touched(kind: str) -> None:
    world, reconciler = make_world()
    world.objects.append(foreign(kind))
    await reconciler.reconcile(KEY)
    assert ("apply", kind) not in world.writes
    assert conditions(world)["Stalled"] == ("True", "ChildConflict")
    assert f"{kind} ns/demo exists and is not managed by this AIAgent" in message_of(
        world, "Stalled"
    )
    assert ("Warning", "ChildConflict") in world.events
    untouched = next(o for o in world.objects if o["metadata"]["uid"] == f"theirs-{kind}")
    assert "ownerReferences" not in untouched["metadata"]


async def test_no_deployment_runs_as_a_stranger_holding_the_agents_identity() -> None:
    """The agent's own ServiceAccount name is taken by an object we did not create: its pods
    would run as whatever that is, so the Deployment waits for the conflict to go."""
    world, reconciler = make_world()
    world.objects.append(foreign("ServiceAccount"))
    await reconciler.reconcile(KEY)
    assert ("apply", "Deployment") not in world.writes
    assert ("apply", "Service") in world.writes
    world.objects = [o for o in world.objects if o["metadata"]["uid"] != "theirs-ServiceAccount"]
    await reconciler.reconcile(KEY)
    assert ("apply", "Deployment") in world.writes


async def test_a_conflict_names_the_foreign_controller() -> None:
    world, reconciler = make_world()
    owner = {"apiVersion": "v1", "kind": "HelmRelease", "name": "x", "uid": "h", "controller": True}
    world.objects.append(foreign("Service", ownerReferences=[owner]))
    await reconciler.reconcile(KEY)
    assert "controlled by HelmRelease/x" in message_of(world, "Stalled")


async def test_the_adopt_annotation_hands_an_existing_object_over() -> None:
    world, reconciler = make_world()
    theirs = foreign("Service", annotations={c.ANNOTATION_ADOPT: "true"})
    theirs["spec"] = {"ports": [{"port": 80}], "selector": {"app": "legacy"}, "clusterIP": "1"}
    world.objects.append(theirs)
    await reconciler.reconcile(KEY)
    service = next(o for o in world.objects if o["kind"] == "Service")
    assert service["metadata"]["uid"] == "theirs-Service", "adopted in place, not re-created"
    assert [p["port"] for p in service["spec"]["ports"]] == [8080, 9090, 9091, 8081]
    assert "app" not in service["spec"]["selector"], "the old owner's selector key is gone"
    assert service["spec"]["clusterIP"] == "1", "server-set fields we do not render stay"
    assert controller_key(service) == KEY
    assert conditions(world)["Stalled"][0] == "False"
    assert ("Normal", "Adopted") in world.events


async def test_a_child_replaced_by_someone_else_is_not_taken_over() -> None:
    world, reconciler = make_world()
    await reconciler.reconcile(KEY)
    service = next(o for o in world.objects if o["kind"] == "Service")
    world.objects.remove(service)  # deleted, and a stranger's Service takes its name,
    world.objects.append(foreign("Service"))
    world.stale.append(service)  # before our cache noticed either
    world.agents[KEY]["spec"]["agentType"] = "testing"  # a change that re-applies the Service
    world.agents[KEY]["metadata"]["generation"] = 2
    await reconciler.reconcile(KEY)
    theirs = next(o for o in world.objects if o["kind"] == "Service")
    assert theirs["metadata"]["uid"] == "theirs-Service"
    assert "ownerReferences" not in theirs["metadata"]
    assert conditions(world)["Stalled"] == ("True", "ChildConflict")


async def test_switching_to_an_existing_service_account_prunes_ours_after_the_rollout() -> None:
    world, reconciler = make_world()
    await reconciler.reconcile(KEY)
    ready_deployment(world)
    world.writes.clear()
    world.marked.add(("ns", "shared"))  # its namespace's owner lets agents run as it
    world.agents[KEY]["spec"]["serviceAccountName"] = "shared"
    world.agents[KEY]["metadata"]["generation"] = 2
    await reconciler.reconcile(KEY)
    assert ("delete", "ServiceAccount") not in world.writes, "old pods still run as it"
    ready_deployment(world, generation=2)
    await reconciler.reconcile(KEY)
    assert ("delete", "ServiceAccount") in world.writes
    assert sorted(o["kind"] for o in world.objects) == ["Deployment", "Service"]


async def test_a_service_account_the_pod_template_names_is_never_pruned() -> None:
    world, reconciler = make_world()
    await reconciler.reconcile(KEY)
    ready_deployment(world)
    world.agents[KEY]["spec"]["serviceAccountName"] = "demo"  # the one we created
    world.agents[KEY]["metadata"]["generation"] = 2
    await reconciler.reconcile(KEY)
    ready_deployment(world, generation=2)
    await reconciler.reconcile(KEY)
    assert ("delete", "ServiceAccount") not in world.writes
    assert "ServiceAccount" in {o["kind"] for o in world.objects}


async def test_rejected_child_stalls_once_without_crashing() -> None:
    world, reconciler = make_world()
    world.reject["Deployment"] = ApiError("Deployment", "demo", 422, "Invalid value", "Invalid")
    result = await reconciler.reconcile(KEY)
    assert conditions(world)["Stalled"] == ("True", "ApplyFailed")
    assert "Invalid value" in message_of(world, "Stalled")
    assert world.events == [("Warning", "ApplyFailed")]
    assert not result.retry, "only a spec change can fix an invalid object"
    await reconciler.reconcile(KEY)
    assert world.events == [("Warning", "ApplyFailed")], "no second event for the same stall"


async def test_a_child_refused_as_invalid_is_not_sent_again_unchanged() -> None:
    """Found by the fuzz tests: every reconcile of a stalled agent (a touch, a Pod event, a
    peer) sent the same refused Deployment again. Until the next resync it is not; a new
    spec is applied at once."""
    clock = Clock()
    world, reconciler = make_world(clock=clock)
    world.reject["Deployment"] = ApiError("Deployment", "demo", 422, "Invalid value", "Invalid")

    def deployment_applies() -> int:
        return world.writes.count(("apply", "Deployment"))

    await reconciler.reconcile(KEY)
    assert deployment_applies() == 1 and conditions(world)["Stalled"] == ("True", "ApplyFailed")
    writes = len(world.writes)
    for _ in range(3):
        await reconciler.reconcile(KEY)
    assert len(world.writes) == writes, "nothing sent again, the status unchanged"
    assert conditions(world)["Stalled"] == ("True", "ApplyFailed")
    assert "Invalid value" in message_of(world, "Stalled")
    clock.now += reconciler.config.resync_seconds + 1  # the next resync tries once more
    await reconciler.reconcile(KEY)
    assert deployment_applies() == 2
    world.agents[KEY]["spec"]["image"] = "example.com/a:2"  # a new spec: at once
    world.agents[KEY]["metadata"]["generation"] = 2
    await reconciler.reconcile(KEY)
    assert deployment_applies() == 3


async def test_a_field_the_schema_does_not_declare_stalls_and_is_not_retried() -> None:
    world, reconciler = make_world()
    world.reject["Deployment"] = ApiError("Deployment", "demo", 500, TYPED_PATCH, "InternalError")
    result = await reconciler.reconcile(KEY)
    assert not result.retry
    assert conditions(world)["Stalled"] == ("True", "ApplyFailed")
    writes = len(world.writes)
    await reconciler.reconcile(KEY)
    assert len(world.writes) == writes


async def test_an_agent_deleted_while_it_is_reconciled_is_gone_not_an_error() -> None:
    """Found by the fuzz tests: the status write of an agent deleted meanwhile (404) ended
    the reconcile in an exception, counted as an error and retried."""
    world, reconciler = make_world()

    async def deleted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise ApiError(c.KIND, "demo", 404, 'aiagents "demo" not found', "NotFound")

    world.patch_status = deleted  # type: ignore[method-assign]
    result = await reconciler.reconcile(KEY)
    assert result.gone and not result.retry
    assert KEY not in reconciler.memos


async def test_a_quota_refusal_stalls_with_its_message_and_is_retried() -> None:
    world, reconciler = make_world()
    quota = "exceeded quota: q, requested: services=1, used: services=0, limited: services=0"
    world.reject["Service"] = ApiError("Service", "demo", 403, f"services is forbidden: {quota}")
    result = await reconciler.reconcile(KEY)
    assert conditions(world)["Stalled"] == ("True", "QuotaExceeded")
    assert quota in message_of(world, "Ready")
    assert result.retry
    assert ("apply", "Deployment") in world.writes, "the rest still converges"
    del world.reject["Service"]  # the quota is lifted; the retry heals with no edit
    result = await reconciler.reconcile(KEY)
    assert not result.retry
    assert conditions(world)["Stalled"][0] == "False"


@pytest.mark.parametrize("status", [0, 409, 429, 500, 503])
async def test_transient_api_trouble_is_retried_while_reconciling(status: int) -> None:
    world, reconciler = make_world()
    world.reject["Deployment"] = ApiError("Deployment", "demo", status, "try later")
    result = await reconciler.reconcile(KEY)
    assert result.retry
    assert conditions(world)["Reconciling"] == ("True", "Retrying")
    assert conditions(world)["Stalled"][0] == "False"


async def test_drift_that_apply_cannot_undo_is_repaired_with_a_merge_patch() -> None:
    world, reconciler = make_world()
    await reconciler.reconcile(KEY)
    service = next(o for o in world.objects if o["kind"] == "Service")
    service["spec"]["ports"][1]["port"] = 9999  # re-keyed by someone else
    service["spec"]["selector"]["extra"] = "x"  # and a selector key added
    service["metadata"]["resourceVersion"] = "99"
    world.reject["Service"] = ApiError("Service", "demo", 422, "duplicate name", "Invalid")
    world.writes.clear()
    await reconciler.reconcile(KEY)
    assert world.writes[:3] == [("apply", "Service"), ("patch", "Service"), ("apply", "Service")]
    repaired = next(o for o in world.objects if o["kind"] == "Service")
    assert [p["port"] for p in repaired["spec"]["ports"]] == [8080, 9090, 9091, 8081]
    assert "extra" not in repaired["spec"]["selector"]
    assert world.events == []


async def test_a_new_child_that_is_invalid_is_not_repaired_but_stalls() -> None:
    world, reconciler = make_world()
    world.reject["Service"] = ApiError("Service", "demo", 422, "invalid", "Invalid")
    await reconciler.reconcile(KEY)
    assert ("patch", "Service") not in world.writes
    assert world.events == [("Warning", "ApplyFailed")]


async def test_a_quantity_only_the_pattern_admits_is_an_invalid_spec_not_an_error() -> None:
    world, reconciler = make_world(gpu={"count": 1, "vram": "1e2.5"})
    result = await reconciler.reconcile(KEY)
    assert conditions(world)["Ready"] == ("False", "InvalidSpec")
    assert "gpu.vram" in message_of(world, "Ready") and not result.retry


async def test_spec_the_models_refuse_is_reported_not_raised() -> None:
    world, reconciler = make_world(replicas="many")
    await reconciler.reconcile(KEY)
    assert world.writes == [("status", "demo")]
    assert conditions(world)["Ready"] == ("False", "InvalidSpec")
    assert "spec.replicas" in message_of(world, "Ready")


async def test_policy_refuses_host_path_and_privileged_and_changes_nothing() -> None:
    world, reconciler = make_world(
        volumes=[{"name": "root", "hostPath": {"path": "/"}}],
        securityContext={"privileged": True},
    )
    await reconciler.reconcile(KEY)
    assert world.writes == [("status", "demo")]
    assert conditions(world)["Stalled"] == ("True", "PolicyViolation")
    message = message_of(world, "Stalled")
    assert "spec.volumes[0] (root) is a hostPath volume" in message
    assert "spec.securityContext.privileged is true" in message


async def test_an_installation_may_allow_host_paths() -> None:
    allow = OperatorConfig(policy=Policy(allow_host_path=True))
    world, reconciler = make_world(
        config=allow,
        volumes=[{"name": "models", "hostPath": {"path": "/models"}}],
        volumeMounts=[{"name": "models", "mountPath": "/models"}],
    )
    await reconciler.reconcile(KEY)
    assert ("apply", "Deployment") in world.writes


@pytest.mark.parametrize("deleting", [True, False])
async def test_agent_being_deleted_or_gone_is_left_to_the_garbage_collector(deleting: bool) -> None:
    world, reconciler = make_world()
    if deleting:
        world.agents[KEY]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    else:
        world.agents.clear()
    result = await reconciler.reconcile(KEY)
    assert world.writes == []
    assert result.gone


async def test_terminating_namespace_stops_the_reconcile_without_writing_status() -> None:
    world, reconciler = make_world()
    world.reject["ServiceAccount"] = ApiError(
        "ServiceAccount", "demo", 403, "being terminated", "Forbidden",
        frozenset({"NamespaceTerminating"}),
    )  # fmt: skip
    await reconciler.reconcile(KEY)
    assert world.writes == [("apply", "ServiceAccount")]


def ready_deployment(world: World, generation: int = 1) -> None:
    """What the Deployment controller and kwok do: all replicas rolled out and available."""
    dep = next(o for o in world.objects if o["kind"] == "Deployment")
    dep["metadata"]["generation"] = generation
    dep["status"] = {
        "observedGeneration": generation,
        "replicas": 1,
        "updatedReplicas": 1,
        "readyReplicas": 1,
        "availableReplicas": 1,
    }
    world.version += 1
    dep["metadata"]["resourceVersion"] = str(world.version)


async def test_status_writes_are_coalesced_within_the_window() -> None:
    clock = Clock()
    world, reconciler = make_world(window=1.0, clock=clock)
    assert (await reconciler.reconcile(KEY)).requeue_after == 1.0
    assert ("status", "demo") not in world.writes
    clock.now += 0.4
    ready_deployment(world)
    assert (await reconciler.reconcile(KEY)).requeue_after == pytest.approx(0.6)
    clock.now += 0.6
    assert (await reconciler.reconcile(KEY)).requeue_after is None
    assert world.writes == [*CHILDREN, ("status", "demo")]
    assert conditions(world)["Ready"][0] == "True", "the one write carries the newest state"


async def test_problems_are_written_at_once_despite_the_window() -> None:
    world, reconciler = make_world(window=60.0)
    world.reject["Deployment"] = ApiError("Deployment", "demo", 422, "invalid", "Invalid")
    assert (await reconciler.reconcile(KEY)).requeue_after is None
    assert world.writes[-1] == ("status", "demo")


async def test_agents_in_a_terminating_namespace_cost_no_writes() -> None:
    world, reconciler = make_world()
    await reconciler.reconcile(KEY)
    world.writes.clear()
    world.terminating.add("ns")
    world.objects = [o for o in world.objects if o["kind"] != "Deployment"]
    await reconciler.reconcile(KEY)
    assert world.writes == []


async def test_a_new_spec_is_reported_once_its_rollout_settled_in_one_write() -> None:
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
    assert (await reconciler.reconcile(KEY)).requeue_after == pytest.approx(SETTLE_WINDOW)
    assert world.writes == [("apply", "Deployment")], "the status waits for the rollout"
    clock.now += 2.0
    ready_deployment(world, generation=2)  # the rollout settles within the window
    await reconciler.reconcile(KEY)
    assert world.writes == [("apply", "Deployment"), ("status", "demo")]
    assert world.agents[KEY]["status"]["observedGeneration"] == 2
    assert conditions(world)["Ready"][0] == "True", "one write, already final"


async def test_a_long_rollout_of_a_new_spec_is_reported_after_the_settle_window() -> None:
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
    await reconciler.reconcile(KEY)
    clock.now += SETTLE_WINDOW - 1
    await reconciler.reconcile(KEY)
    assert world.writes == [("apply", "Deployment")]
    clock.now += 1
    await reconciler.reconcile(KEY)
    assert world.writes == [("apply", "Deployment"), ("status", "demo")]
    assert conditions(world)["Reconciling"][0] == "True"


async def test_a_new_agent_waiting_behind_a_burst_is_acknowledged_once() -> None:
    world, reconciler = make_world()
    await reconciler.acknowledge(KEY, ahead=500)
    assert world.writes == [("status", "demo")]
    assert conditions(world)["Reconciling"] == ("True", "Queued")
    assert "behind about 500 agents" in message_of(world, "Ready")
    assert "observedGeneration" not in world.agents[KEY]["status"]
    await reconciler.acknowledge(KEY, ahead=400)
    assert world.writes == [("status", "demo")], "never over a status"
    await reconciler.reconcile(KEY)  # the real status follows in one window
    assert world.agents[KEY]["status"]["observedGeneration"] == 1


async def test_status_reports_running_replicas_not_the_asked_for_count() -> None:
    world, reconciler = make_world(replicas=3)
    await reconciler.reconcile(KEY)
    assert world.agents[KEY]["status"]["replicas"] == 0, "no pod runs yet"


async def test_a_status_key_an_older_version_wrote_disappears_in_one_write() -> None:
    world, reconciler = make_world()
    await reconciler.reconcile(KEY)
    world.agents[KEY]["status"]["legacyPhase"] = "Running"
    world.agents[KEY]["status"]["placement"]["old"] = "x"
    world.writes.clear()
    await reconciler.reconcile(KEY)
    assert world.writes == [("status", "demo")]
    assert "legacyPhase" not in world.agents[KEY]["status"]
    assert "old" not in world.agents[KEY]["status"]["placement"]
    await reconciler.reconcile(KEY)
    assert world.writes == [("status", "demo")], "and never again"


def test_status_patch_nulls_removed_keys_and_sends_only_changes() -> None:
    before = {"a": 1, "b": {"c": 1, "d": 2}, "e": [1], "gone": True}
    after = {"a": 1, "b": {"c": 1, "d": 3}, "e": [1, 2], "new": "x"}
    patch = status_patch(before, after)
    assert patch == {"b": {"d": 3}, "e": [1, 2], "new": "x", "gone": None}
    assert merge(before, patch) == after


# What server-side apply answers for a field the schema does not declare (found by the fuzz
# tests in a pass-through affinity): a 500, though no retry can help.
TYPED_PATCH = (
    "failed to create typed patch object (ns/demo; apps/v1, Kind=Deployment): "
    ".spec.template.spec.affinity.operator: field not declared in schema"
)


@pytest.mark.parametrize(
    ("error", "reason", "stalled"),
    [
        (ApiError("S", "x", 403, "forbidden: exceeded quota: q"), "QuotaExceeded", True),
        (ApiError("S", "x", 403, "cannot create services"), "Forbidden", True),
        (ApiError("S", "x", 422, "invalid", "Invalid"), "ApplyFailed", True),
        (ApiError("S", "x", 500, TYPED_PATCH, "InternalError"), "ApplyFailed", True),
        (ApiError("S", "x", 0, "timed out"), "Retrying", False),
        (ApiError("S", "x", 503, "unavailable", "ServiceUnavailable"), "Retrying", False),
    ],
)
def test_classify(error: ApiError, reason: str, stalled: bool) -> None:
    problem = classify(error)
    assert (problem.reason, problem.stalled) == (reason, stalled)


async def test_a_settled_plain_agent_is_not_parsed_or_rendered_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world, reconciler = make_world()
    await reconciler.reconcile(KEY)
    for child in world.objects:
        reconciler.observe_child("ADDED", KEY, child)
    ready_deployment(world)  # only the Deployment's status moves
    parsed: list[str] = []
    original = AIAgent.from_body

    def counting(body: dict[str, Any]) -> AIAgent:
        parsed.append(body["metadata"]["name"])
        return original(body)

    monkeypatch.setattr(AIAgent, "from_body", counting)
    await reconciler.reconcile(KEY)
    assert parsed == []
    assert conditions(world)["Ready"][0] == "True", "its status still follows the Deployment"
    world.agents[KEY]["spec"]["image"] = "example.com/a:2"  # a new spec: a full pass again
    world.agents[KEY]["metadata"]["generation"] = 2
    await reconciler.reconcile(KEY)
    assert parsed == ["demo"]


async def test_only_agents_whose_objects_name_their_peers_read_them() -> None:
    world, reconciler = make_world()
    await reconciler.reconcile(KEY)
    assert world.writes and world.peer_reads == 0, "a plain agent never lists its namespace"
    world.agents[KEY]["spec"]["mesh"] = {"mode": "ambient"}
    world.agents[KEY]["metadata"]["generation"] = 2
    await reconciler.reconcile(KEY)
    assert world.peer_reads == 1, "a mesh agent reads them once per pass"


async def test_a_settled_agent_is_rendered_again_when_a_child_changes() -> None:
    world, reconciler = make_world()
    await reconciler.reconcile(KEY)
    service = next(o for o in world.objects if o["kind"] == "Service")
    service["spec"]["ports"].pop()  # someone else's edit: its content digest changes
    service["metadata"]["resourceVersion"] = "99"
    world.writes.clear()
    await reconciler.reconcile(KEY)
    assert ("apply", "Service") in world.writes


async def test_a_rollouts_progress_is_written_every_few_seconds_not_at_every_step() -> None:
    clock = Clock()
    world, reconciler = make_world(window=1.0, clock=clock, replicas=3)
    await reconciler.reconcile(KEY)
    clock.now += 1.0
    await reconciler.reconcile(KEY)  # the first status: rolling out
    world.writes.clear()
    dep = next(o for o in world.objects if o["kind"] == "Deployment")
    dep["status"] = {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3}
    for ready in (1, 2):
        clock.now += 1.0
        dep["status"].update(readyReplicas=ready, availableReplicas=ready)
        await reconciler.reconcile(KEY)
    assert world.writes == [], "counts moved, nothing else: no write yet"
    clock.now += 1.0
    dep["status"].update(readyReplicas=3, availableReplicas=3)
    await reconciler.reconcile(KEY)  # Ready: a condition changed, written at once
    assert world.writes == [("status", "demo")]
    assert world.agents[KEY]["status"]["availableReplicas"] == 3


async def test_a_cache_that_lags_behind_our_status_write_causes_no_second_write() -> None:
    world, reconciler = make_world()
    world.agents[KEY]["metadata"]["resourceVersion"] = "1"
    world.stale_agent = copy.deepcopy(world.agents[KEY])  # the cache will not see our write
    await reconciler.reconcile(KEY)
    assert world.writes.count(("status", "demo")) == 1
    await reconciler.reconcile(KEY)  # a child's event, before the agent's own event arrives
    assert world.writes.count(("status", "demo")) == 1
