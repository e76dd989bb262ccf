"""Which Pods the operator made for an agent: Pod -> ReplicaSet -> Deployment -> AIAgent, by uid.

Anyone who may create Pods can label one `agentfleet.io/gpu=true` and annotate it with a
made-up decision. The books believe a Pod's decision only when its controller is a ReplicaSet
whose controller is the Deployment the operator keeps for that agent (named after the agent,
controlled by the AIAgent's uid): a chain of uids nobody else can forge for an existing agent.
Every other Pod is counted by what it requests once bound (ledger.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agentfleet.api import constants as c

Key = tuple[str, str]  # (namespace, name) of an AIAgent


@dataclass(frozen=True)
class ReplicaSetOwner:
    """What the books need of a ReplicaSet: its namespace and controlling Deployment."""

    namespace: str
    deployment: str
    deployment_uid: str


def controller_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ownerReference with `controller: true`, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("controller") is True:
            return ref
    return None


def replicaset_owner(replicaset: Mapping[str, Any]) -> ReplicaSetOwner | None:
    """The Deployment that controls a ReplicaSet (None: none does)."""
    ref = controller_of(replicaset)
    if ref is None or ref.get("kind") != "Deployment" or ref.get("apiVersion") != "apps/v1":
        return None
    meta = replicaset.get("metadata") or {}
    return ReplicaSetOwner(
        str(meta.get("namespace") or ""), str(ref.get("name") or ""), str(ref.get("uid") or "")
    )


def agent_controller_uid(obj: Mapping[str, Any]) -> str | None:
    """The uid of the AIAgent that controls an object, if one does."""
    ref = controller_of(obj)
    if ref is None or ref.get("kind") != c.KIND:
        return None
    if str(ref.get("apiVersion") or "").split("/")[0] != c.GROUP:
        return None
    return str(ref.get("uid") or "") or None


def claimed_agent(pod: Mapping[str, Any]) -> Key | None:
    """The agent a Pod's labels say it belongs to (a claim, not proof)."""
    meta = pod.get("metadata") or {}
    name = (meta.get("labels") or {}).get(c.LABEL_INSTANCE)
    return (str(meta.get("namespace") or ""), str(name)) if name else None


def genuine_agent(
    pod: Mapping[str, Any],
    replicaset: Callable[[str], ReplicaSetOwner | None],
    deployment_uid: Callable[[Key], str | None],
) -> Key | None:
    """The agent whose Deployment made this Pod, or None.

    `replicaset(uid)` is a ReplicaSet the caller watches; `deployment_uid(agent)` the uid of
    the Deployment named after that agent and controlled by that AIAgent's uid (None when there
    is none)."""
    claim = claimed_agent(pod)
    ref = controller_of(pod)
    if claim is None or ref is None:
        return None
    if ref.get("kind") != "ReplicaSet" or ref.get("apiVersion") != "apps/v1":
        return None
    owner = replicaset(str(ref.get("uid") or ""))
    if owner is None or (owner.namespace, owner.deployment) != claim:
        return None
    expected = deployment_uid(claim)
    if not expected or owner.deployment_uid != expected:
        return None
    return claim


def operator_deployments(
    deployments: Iterable[Mapping[str, Any]], agents: Iterable[Mapping[str, Any]]
) -> dict[Key, str]:
    """Agent -> uid of its Deployment, from listed Deployments and AIAgents (for the CLI and
    the HTTP API, which list what the operator watches)."""
    agent_uids = {
        (str(a["metadata"].get("namespace") or ""), str(a["metadata"]["name"])): str(
            a["metadata"].get("uid") or ""
        )
        for a in agents
    }
    found = {}
    for deployment in deployments:
        meta = deployment.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        uid = agent_controller_uid(deployment)
        if uid and agent_uids.get(key) == uid:
            found[key] = str(meta.get("uid") or "")
    return found


def trusted_pods(
    replicasets: Iterable[Mapping[str, Any]],
    deployments: Iterable[Mapping[str, Any]],
    agents: Iterable[Mapping[str, Any]],
) -> Callable[[Mapping[str, Any]], bool]:
    """A `Ledger.from_pods(trusted=...)` predicate from listed objects."""
    owners = {
        str(rs["metadata"].get("uid") or ""): owner
        for rs in replicasets
        if (owner := replicaset_owner(rs)) is not None
    }
    kept = operator_deployments(deployments, agents)
    return lambda pod: genuine_agent(pod, owners.get, kept.get) is not None
