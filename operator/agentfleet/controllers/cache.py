"""What the operator remembers of the objects it watches: small records, not whole objects.

A watch cache of thousands of Deployments as Python dicts costs tens of KiB per object. A
record keeps the few fields decisions read on every pass (uid, resourceVersion, the applied
hash, a digest of everything but status) as attributes, and the rest as compressed JSON that is
unpacked only when a decision needs it (a drift check of a child whose content changed, or
the status of one agent). Memory then grows by a few KiB per agent.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from agentfleet.api import constants as c
from agentfleet.render.context import Peer

Key = tuple[str, str]  # (namespace, name) of an AIAgent

# Fields that change without any change of meaning, left out of a child's digest.
_VOLATILE_METADATA = frozenset({"resourceVersion", "managedFields", "generation"})


def pack(obj: dict[str, Any]) -> bytes:
    return zlib.compress(json.dumps(obj, separators=(",", ":")).encode(), 1)


def unpack(data: bytes) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(zlib.decompress(data))
    return result


def _without_managed_fields(body: dict[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    if "managedFields" not in meta:
        return body
    return {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


def content_digest(body: dict[str, Any]) -> str:
    """A digest of what an object *is* (spec and metadata), blind to status and versions: two
    events with the same digest differ only in what the object's controller reports. Where
    the API server keeps a generation (it changes with every spec change), the generation
    stands for the spec, and the digest costs next to nothing."""
    meta = body.get("metadata") or {}
    if meta.get("generation"):
        kept = [meta.get(k) for k in _MEANINGFUL_METADATA]
        canonical = json.dumps(kept, sort_keys=True, separators=(",", ":"))
    else:
        meta = {k: v for k, v in meta.items() if k not in _VOLATILE_METADATA}
        rest = {k: v for k, v in body.items() if k not in ("metadata", "status")}
        canonical = json.dumps([meta, rest], sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(canonical.encode(), digest_size=12).hexdigest()


_MEANINGFUL_METADATA = (
    "uid",
    "generation",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "deletionTimestamp",
)


# What the status of an agent reads from its Deployment's status (status.rollout).
_DEPLOYMENT_STATUS = (
    "observedGeneration",
    "replicas",
    "updatedReplicas",
    "readyReplicas",
    "availableReplicas",
)


def _kept_status(body: dict[str, Any]) -> dict[str, Any] | None:
    """A child's status as far as decisions read it: for a Deployment (its status changes
    with every replica) only the counts and the Progressing condition."""
    status = body.get("status")
    if status is None or body.get("kind") != "Deployment":
        return status
    kept: dict[str, Any] = {k: status[k] for k in _DEPLOYMENT_STATUS if k in status}
    progressing = [
        {k: cond.get(k) for k in ("type", "status", "reason", "message")}
        for cond in status.get("conditions") or []
        if cond.get("type") == "Progressing"
    ]
    if progressing:
        kept["conditions"] = progressing
    return kept


def replicas_managers(body: dict[str, Any]) -> tuple[str, ...]:
    """Field managers that own spec.replicas, read from managedFields (sorted)."""
    owners = {
        str(entry.get("manager"))
        for entry in (body.get("metadata") or {}).get("managedFields") or []
        if "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {})
    }
    return tuple(sorted(owners))


@dataclass(slots=True, frozen=True)
class ChildRecord:
    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    applied_hash: str | None
    digest: str
    packed: bytes  # the object without its status
    status: dict[str, Any] | None = None  # kept apart: most events change only this
    replicas_managers: tuple[str, ...] = ()  # for Deployments: who owns spec.replicas

    @classmethod
    def of(cls, body: dict[str, Any], previous: ChildRecord | None = None) -> ChildRecord:
        """The record of a new version of a child; the packed content of `previous` is
        reused when only the status moved (no JSON encoding, no compression)."""
        managers = replicas_managers(body) if body.get("kind") == "Deployment" else ()
        body = _without_managed_fields(dict(body))
        meta = body["metadata"]
        digest = content_digest(body)
        if previous is not None and previous.digest == digest:
            packed = previous.packed
        else:
            packed = pack({k: v for k, v in body.items() if k != "status"})
        return cls(
            kind=body.get("kind", ""),
            namespace=meta.get("namespace", ""),
            name=meta["name"],
            uid=meta.get("uid", ""),
            resource_version=str(meta.get("resourceVersion", "")),
            applied_hash=(meta.get("annotations") or {}).get(c.ANNOTATION_APPLIED_HASH),
            digest=digest,
            packed=packed,
            status=_kept_status(body),
            replicas_managers=managers,
        )

    def body(self) -> dict[str, Any]:
        body = unpack(self.packed)
        if self.status is not None:
            body["status"] = self.status
        return body

    def newer_than(self, other: ChildRecord) -> bool:
        """resourceVersions are etcd revisions; Kubernetes calls them opaque, so anything
        unparsable counts as "not newer"."""
        try:
            return int(self.resource_version) > int(other.resource_version)
        except ValueError:
            return False


@dataclass(slots=True, frozen=True)
class AgentRecord:
    uid: str
    generation: int
    deleting: bool
    # Summary condition statuses, for the agentfleet_agents gauge without unpacking.
    conditions: tuple[tuple[str, str], ...]
    packed: bytes

    @classmethod
    def of(cls, body: dict[str, Any]) -> AgentRecord:
        body = _without_managed_fields(dict(body))
        meta = body["metadata"]
        status = body.get("status") or {}
        return cls(
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation") or 0),
            deleting=bool(meta.get("deletionTimestamp")),
            conditions=tuple(
                (str(cond.get("type")), str(cond.get("status")))
                for cond in status.get("conditions") or []
                if cond.get("type") in (c.COND_READY, c.COND_STALLED, c.COND_RECONCILING)
            ),
            packed=pack(body),
        )

    def body(self) -> dict[str, Any]:
        return unpack(self.packed)


def peer_of(body: dict[str, Any]) -> Peer:
    """What other agents' objects may depend on, read straight from the raw body (no parse)."""
    meta, spec = body["metadata"], body.get("spec") or {}
    mesh = spec.get("mesh")
    multicluster = spec.get("multicluster")
    return Peer(
        name=meta["name"],
        uid=meta.get("uid", ""),
        agent_type=str(spec.get("agentType", "")),
        service_account=str(spec.get("serviceAccountName") or meta["name"]),
        mesh=mesh if isinstance(mesh, dict) else None,
        exported=isinstance(multicluster, dict) and multicluster.get("export") is True,
    )


def depends_on_peers(peer: Peer, default_mesh_mode: str | None = None) -> bool:
    """Do this agent's objects name other agents? Mesh policies name callers by agent or
    type, and the objects mesh agents share list every agent using them as owners. Without
    spec.mesh an agent is in the mesh only by the operator's default mode; with spec.mesh
    but no mode it counts as in the mesh unless that default is known to be none."""
    if peer.mesh is None:
        return default_mesh_mode not in (None, "none")
    return (peer.mesh.get("mode") or default_mesh_mode) != "none"


class PeerTable:
    """Which agents of each namespace depend on their peers, and the namespace's peers
    sorted, rebuilt from `source` (kopf's peer index, complete before any event handler
    runs) only after a change and only when a render asks: a burst of thousands of agents
    in one namespace costs no per-event or per-reconcile scan of it."""

    def __init__(self, source: Callable[[str], Iterable[Peer]]) -> None:
        self._source = source
        self._seen: dict[tuple[str, str], Peer] = {}
        self._dependents: dict[str, set[str]] = {}
        self._sorted: dict[str, tuple[Peer, ...]] = {}

    def note(
        self,
        key: tuple[str, str],
        peer: Peer | None,
        mesh_mode: str | None,
        listing: bool = False,
    ) -> bool:
        """Record the agent's peer view (None: it is gone); True when it changed. Agents
        first seen while listing were already in the source when it was last read."""
        namespace, name = key
        before = self._seen.pop(key, None)
        dependents = self._dependents.setdefault(namespace, set())
        dependents.discard(name)
        if peer is not None:
            self._seen[key] = peer
            if depends_on_peers(peer, mesh_mode):
                dependents.add(name)
        if before == peer:
            return False
        if not (listing and before is None):
            self._sorted.pop(namespace, None)
        return True

    def peers(self, namespace: str) -> tuple[Peer, ...]:
        """Sorted by name."""
        found = self._sorted.get(namespace)
        if found is None:
            found = tuple(sorted(self._source(namespace), key=lambda p: p.name))
            self._sorted[namespace] = found
        return found

    def dependents(self, namespace: str) -> list[str]:
        """Names of the agents whose objects name their peers (mesh agents)."""
        return sorted(self._dependents.get(namespace, ()))


def agent_owner_keys(body: dict[str, Any]) -> list[Key]:
    """Every AIAgent among the owners, controller or not (shared objects have several)."""
    meta = body["metadata"]
    return [
        (meta.get("namespace", ""), ref["name"])
        for ref in meta.get("ownerReferences") or []
        if ref.get("kind") == c.KIND and ref.get("apiVersion", "").split("/")[0] == c.GROUP
    ]


def controller_key(body: dict[str, Any]) -> Key | None:
    """The AIAgent that controls this object, if any."""
    meta = body["metadata"]
    for ref in meta.get("ownerReferences") or []:
        group = ref.get("apiVersion", "").split("/")[0]
        if ref.get("controller") and ref.get("kind") == c.KIND and group == c.GROUP:
            return (meta.get("namespace", ""), ref["name"])
    return None


def controlled_by(body: dict[str, Any], agent_uid: str) -> bool:
    """Is this object controlled by the AIAgent with this uid (not just one of that name)?"""
    return any(
        ref.get("controller") and ref.get("kind") == c.KIND and ref.get("uid") == agent_uid
        for ref in body["metadata"].get("ownerReferences") or []
    )


def foreign_controller(body: dict[str, Any]) -> str | None:
    """'Kind/name' of a controller that is not an AIAgent, if any."""
    for ref in body["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") != c.KIND:
            return f"{ref.get('kind')}/{ref.get('name')}"
    return None


class ChildStore:
    """Records of our children by the AIAgent(s) that own them, fed by the informers: a child
    is its controller's; a shared object (no controller) is every AIAgent owner's."""

    def __init__(self) -> None:
        self.by_owner: dict[Key, dict[tuple[str, str], ChildRecord]] = {}
        self._owners: dict[tuple[str, str, str], tuple[Key, ...]] = {}

    def children(self, kind: str, owner: Key) -> list[ChildRecord]:
        return [r for (k, _), r in self.by_owner.get(owner, {}).items() if k == kind]

    def upsert(self, body: dict[str, Any], shared: bool) -> tuple[Key, ...]:
        """Store the child; returns every owner it had or has now (each needs a reconcile)."""
        controller = controller_key(body)
        owners = (controller,) if controller else tuple(agent_owner_keys(body)) if shared else ()
        meta = body.get("metadata") or {}
        kind, namespace, name = str(body.get("kind")), meta.get("namespace") or "", meta["name"]
        known = self._owners.get((kind, namespace, name), ())
        previous = self.by_owner.get(known[0], {}).get((kind, name)) if known else None
        record = ChildRecord.of(body, previous)
        before = self._drop(record.kind, record.namespace, record.name)
        for owner in owners:
            self.by_owner.setdefault(owner, {})[(record.kind, record.name)] = record
        if owners:
            self._owners[(record.kind, record.namespace, record.name)] = owners
        return tuple(dict.fromkeys((*before, *owners)))

    def remove(self, body: dict[str, Any]) -> tuple[Key, ...]:
        meta = body.get("metadata") or {}
        return self._drop(str(body.get("kind")), meta.get("namespace") or "", meta.get("name"))

    def _drop(self, kind: str, namespace: str, name: Any) -> tuple[Key, ...]:
        owners = self._owners.pop((kind, namespace, str(name)), ())
        for owner in owners:
            children = self.by_owner.get(owner, {})
            children.pop((kind, str(name)), None)
            if not children:
                self.by_owner.pop(owner, None)
        return owners
