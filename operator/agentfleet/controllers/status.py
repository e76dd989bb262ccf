"""Summarise an agent's children into its status: counts, endpoints and conditions.

Pure: takes the agent, the observed Deployment, what went wrong (if anything) and the state of
each optional feature, returns the status dict. A condition keeps its lastTransitionTime while
its status stays the same, so recomputing an unchanged agent yields an identical status and no
write. `status_patch` turns old and new status into the smallest merge patch, with null for
keys that must disappear.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentfleet.api import constants as c
from agentfleet.api import timestamps
from agentfleet.api.constants import Reason
from agentfleet.api.models import AIAgent
from agentfleet.render import gpu, service
from agentfleet.render.common import label_selector, service_account_name


@dataclass(frozen=True)
class Problem:
    """What keeps the agent from its desired state. `stalled`: a person must act (fix the
    spec, lift a quota, grant RBAC, remove a conflicting object); otherwise it is transient
    API trouble that a retry will get past, and the agent is still Reconciling."""

    reason: str
    message: str
    stalled: bool = True


@dataclass(frozen=True)
class Placed:
    """A GPU agent's placement: the Placed condition and status.placement's details."""

    ok: bool
    reason: str
    message: str
    replicas: tuple[dict[str, Any], ...] = ()  # {node, gpus, vramMiB}
    committed_vram: str | None = None
    refused: bool = False  # no node has room: the agent waits for capacity


@dataclass(frozen=True)
class FeatureState:
    """One optional feature's condition (ScalerReady, MeshReady ...)."""

    condition: str
    ok: bool
    reason: str
    message: str


@dataclass(frozen=True)
class Rollout:
    """Where the Deployment's rollout stands, read the way `kubectl rollout status` reads it."""

    done: bool
    message: str
    stalled: bool = False


def rollout(deployment: dict[str, Any] | None) -> Rollout:
    if deployment is None:
        return Rollout(False, "waiting for the Deployment to be created")
    name = deployment["metadata"]["name"]
    status = deployment.get("status") or {}
    wanted = deployment.get("spec", {}).get("replicas", 1)
    if status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 0):
        return Rollout(False, f"waiting for the Deployment controller to observe {name}'s update")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return Rollout(
                False,
                f"Deployment {name} exceeded its progress deadline: "
                f"{cond.get('message', '')}".rstrip(": "),
                stalled=True,
            )
    updated = status.get("updatedReplicas", 0)
    total = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    if updated < wanted:
        return Rollout(False, f"rolling out: {updated} of {wanted} replicas updated")
    if total > updated:
        return Rollout(False, f"rolling out: {total - updated} old replicas pending termination")
    if available < wanted:
        return Rollout(False, f"{available} of {wanted} replicas available")
    return Rollout(True, f"{available} of {wanted} replicas available")


def condition(
    kind: str,
    status: bool,
    reason: str,
    message: str,
    generation: int,
    previous: list[dict[str, Any]],
    timestamp: str,
) -> dict[str, Any]:
    text = "True" if status else "False"
    before = next((cond for cond in previous if cond.get("type") == kind), None)
    transition = (
        before["lastTransitionTime"]
        if before and before.get("status") == text and before.get("lastTransitionTime")
        else timestamp
    )
    return {
        "type": kind,
        "status": text,
        "observedGeneration": generation,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    }


# (condition type, status, reason, message) before timestamps and generation are added.
Summary = list[tuple[str, bool, str, str]]


def _summary(problem: Problem | None, state: Rollout, wanted: int) -> Summary:
    """Ready, Reconciling and Stalled, from what went wrong or how the rollout stands."""
    if problem and problem.stalled:
        return [
            (c.COND_READY, False, problem.reason, problem.message),
            (c.COND_RECONCILING, False, problem.reason, "waiting for a person to act"),
            (c.COND_STALLED, True, problem.reason, problem.message),
        ]
    if problem:
        return [
            (c.COND_READY, False, problem.reason, problem.message),
            (c.COND_RECONCILING, True, problem.reason, problem.message),
            (c.COND_STALLED, False, problem.reason, "retrying"),
        ]
    if state.stalled:
        reason = Reason.PROGRESS_DEADLINE_EXCEEDED
        return [
            (c.COND_READY, False, reason, state.message),
            (c.COND_RECONCILING, False, reason, state.message),
            (c.COND_STALLED, True, reason, state.message),
        ]
    if not state.done:
        return [
            (c.COND_READY, False, Reason.PROGRESSING, state.message),
            (c.COND_RECONCILING, True, Reason.PROGRESSING, state.message),
            (c.COND_STALLED, False, Reason.PROGRESSING, "making progress"),
        ]
    reason = Reason.SCALED_TO_ZERO if wanted == 0 else Reason.AVAILABLE
    return [
        (c.COND_READY, True, reason, state.message),
        (c.COND_RECONCILING, False, Reason.RECONCILED, "rollout complete"),
        (c.COND_STALLED, False, Reason.RECONCILED, "rollout complete"),
    ]


def pending_features(agent: AIAgent, served: frozenset[str]) -> list[FeatureState]:
    """A requested feature that rendered nothing says why instead of staying silent: mesh
    settings without a mode, on an operator whose default mode is none. (An explicit
    `mode: none` is the user's choice and gets no condition.)"""
    mesh = agent.spec.mesh
    if mesh is None or mesh.mode is not None or c.COND_MESH_READY in served:
        return []
    message = (
        "no Istio objects: spec.mesh.mode is unset and the operator's default mode"
        " (--mesh-mode) is none; set spec.mesh.mode to ambient or sidecar"
    )
    return [FeatureState(c.COND_MESH_READY, False, Reason.DISABLED, message)]


def _conditions(
    summary: Summary, generation: int, previous: dict[str, Any], timestamp: str | None
) -> list[dict[str, Any]]:
    stamp = timestamp or timestamps.format_time()
    old = previous.get("conditions") or []
    return [
        condition(kind, ok, reason, message, generation, old, stamp)
        for kind, ok, reason, message in summary
    ]


@dataclass(frozen=True)
class StatusInputs:
    """What the status takes from the agent's spec: fixed for one generation, so the
    reconciler can keep it and skip parsing an unchanged agent again."""

    generation: int
    replicas: int
    selector: str
    service_account_name: str
    endpoints: dict[str, str]
    gpu_summary: str

    @classmethod
    def of(cls, agent: AIAgent, cluster_domain: str) -> StatusInputs:
        return cls(
            agent.metadata.generation,
            agent.spec.replicas,
            label_selector(agent),
            service_account_name(agent),
            service.endpoints(agent, cluster_domain),
            gpu.summary(agent.spec.gpu),
        )


def desired_status(
    agent: AIAgent,
    deployment: dict[str, Any] | None,
    problem: Problem | None,
    previous: dict[str, Any] | None,
    cluster_domain: str,
    timestamp: str | None = None,
    features: list[FeatureState] | None = None,
    placed: Placed | None = None,
) -> dict[str, Any]:
    inputs = StatusInputs.of(agent, cluster_domain)
    return status_from(inputs, deployment, problem, previous, timestamp, features, placed)


def status_from(
    inputs: StatusInputs,
    deployment: dict[str, Any] | None,
    problem: Problem | None,
    previous: dict[str, Any] | None,
    timestamp: str | None = None,
    features: list[FeatureState] | None = None,
    placed: Placed | None = None,
) -> dict[str, Any]:
    dep_status = (deployment or {}).get("status") or {}
    wanted = (deployment or {}).get("spec", {}).get("replicas", inputs.replicas)
    if problem is None and placed is not None and placed.refused:
        # Waiting for GPU capacity is why the rollout does not progress: say so.
        problem = Problem(placed.reason, placed.message, stalled=False)
    summary = _summary(problem, rollout(deployment), wanted) + [
        (f.condition, f.ok, f.reason, f.message) for f in features or []
    ]
    if placed is not None:
        summary.append((c.COND_PLACED, placed.ok, placed.reason, placed.message))
    generation = inputs.generation
    return {
        "observedGeneration": generation,
        # What is running (the Deployment's status), not what was asked for.
        "replicas": dep_status.get("replicas", 0),
        "readyReplicas": dep_status.get("readyReplicas", 0),
        "availableReplicas": dep_status.get("availableReplicas", 0),
        "selector": inputs.selector,
        "serviceAccountName": inputs.service_account_name,
        "endpoints": dict(inputs.endpoints),
        "placement": _placement(inputs.gpu_summary, placed),
        "conditions": _conditions(summary, generation, previous or {}, timestamp),
    }


def _placement(summary: str, placed: Placed | None) -> dict[str, Any]:
    if placed is None or not placed.replicas:
        return {"summary": summary}
    nodes = sorted({r["node"] for r in placed.replicas})
    shown = ",".join(nodes[:3]) + (f",+{len(nodes) - 3}" if len(nodes) > 3 else "")
    result: dict[str, Any] = {"summary": f"{summary} on {shown}", "replicas": list(placed.replicas)}
    if placed.committed_vram:
        result["committedVRAM"] = placed.committed_vram
    return result


def invalid_spec_status(
    generation: int, message: str, previous: dict[str, Any] | None, timestamp: str | None = None
) -> dict[str, Any]:
    """Status for a spec the models refuse (only possible if the CRD schema was bypassed)."""
    previous = previous or {}
    summary = _summary(Problem(Reason.INVALID_SPEC, message), Rollout(False, ""), 0)
    return {
        **{k: v for k, v in previous.items() if k != "conditions"},
        "observedGeneration": generation,
        "conditions": _conditions(summary, generation, previous, timestamp),
    }


def status_patch(previous: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns `previous` into `desired`: changed keys,
    nested objects recursively, lists whole, and null for every key to remove."""
    patch: dict[str, Any] = {}
    for key in previous.keys() - desired.keys():
        patch[key] = None
    for key, value in desired.items():
        old = previous.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            nested = status_patch(old, value)
            if nested:
                patch[key] = nested
        elif value != old or key not in previous:
            patch[key] = value
    return patch


def queued_status(ahead: int, workers: int, timestamp: str | None = None) -> dict[str, Any]:
    """What a new agent shows while it waits for a worker (no observedGeneration: nothing
    of its spec is observed yet)."""
    message = (
        f"seen; waiting for a worker behind about {ahead} agents"
        f" ({workers} are reconciled at a time)"
    )
    summary = [
        (c.COND_READY, False, Reason.QUEUED, message),
        (c.COND_RECONCILING, True, Reason.QUEUED, message),
        (c.COND_STALLED, False, Reason.QUEUED, "making progress"),
    ]
    return {"conditions": _conditions(summary, 0, {}, timestamp)}
