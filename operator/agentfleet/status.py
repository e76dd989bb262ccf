"""Summarise an agent's children into its status: counts, endpoints and conditions.

Pure: takes the agent, the observed Deployment and what went wrong (if anything), returns
the status dict. A condition keeps its lastTransitionTime while its status stays the same,
so recomputing an unchanged agent yields an identical status and no write.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from agentfleet import constants as c
from agentfleet.constants import Reason
from agentfleet.models import AIAgent
from agentfleet.render import gpu, service
from agentfleet.render.common import label_selector, service_account_name


@dataclass(frozen=True)
class Problem:
    """Something only the user can fix; it makes the agent Stalled."""

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


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def desired_status(
    agent: AIAgent,
    deployment: dict[str, Any] | None,
    problem: Problem | None,
    previous: dict[str, Any] | None,
    cluster_domain: str,
    timestamp: str | None = None,
) -> dict[str, Any]:
    previous = previous or {}
    generation = agent.metadata.generation
    old_conditions = previous.get("conditions") or []
    stamp = timestamp or now()

    def cond(kind: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
        return condition(kind, ok, reason, message, generation, old_conditions, stamp)

    dep_status = (deployment or {}).get("status") or {}
    wanted = (deployment or {}).get("spec", {}).get("replicas", agent.spec.replicas)
    state = rollout(deployment)
    if problem:
        ready = cond(c.COND_READY, False, problem.reason, problem.message)
        reconciling = cond(
            c.COND_RECONCILING, False, problem.reason, "waiting for the spec to be fixed"
        )
        stalled = cond(c.COND_STALLED, True, problem.reason, problem.message)
    elif state.stalled:
        reason = Reason.PROGRESS_DEADLINE_EXCEEDED
        ready = cond(c.COND_READY, False, reason, state.message)
        reconciling = cond(c.COND_RECONCILING, False, reason, state.message)
        stalled = cond(c.COND_STALLED, True, reason, state.message)
    elif not state.done:
        ready = cond(c.COND_READY, False, Reason.PROGRESSING, state.message)
        reconciling = cond(c.COND_RECONCILING, True, Reason.PROGRESSING, state.message)
        stalled = cond(c.COND_STALLED, False, Reason.PROGRESSING, "making progress")
    else:
        reason = Reason.SCALED_TO_ZERO if wanted == 0 else Reason.AVAILABLE
        ready = cond(c.COND_READY, True, reason, state.message)
        reconciling = cond(c.COND_RECONCILING, False, Reason.RECONCILED, "rollout complete")
        stalled = cond(c.COND_STALLED, False, Reason.RECONCILED, "rollout complete")
    conditions = [ready, reconciling, stalled, *_pending_features(agent, cond)]
    return {
        "observedGeneration": generation,
        "replicas": wanted,
        "readyReplicas": dep_status.get("readyReplicas", 0),
        "availableReplicas": dep_status.get("availableReplicas", 0),
        "selector": label_selector(agent),
        "serviceAccountName": service_account_name(agent),
        "endpoints": service.endpoints(agent, cluster_domain),
        "placement": {"summary": gpu.summary(agent.spec.gpu)},
        "conditions": conditions,
    }


def _pending_features(agent: AIAgent, cond: Any) -> list[dict[str, Any]]:
    """Requested features this version does not render yet say so instead of being ignored."""
    found = []
    scaling = agent.spec.autoscaling
    if scaling and scaling.enabled:
        found.append(
            cond(
                c.COND_SCALER_READY,
                False,
                Reason.NOT_IMPLEMENTED,
                "autoscaling is not rendered by this operator version yet; "
                f"running the fixed spec.replicas={agent.spec.replicas}",
            )
        )
    mesh = agent.spec.mesh
    if mesh and mesh.enabled:
        found.append(
            cond(
                c.COND_MESH_READY,
                False,
                Reason.NOT_IMPLEMENTED,
                "mesh policy is not rendered by this operator version yet; "
                "no Istio objects were created",
            )
        )
    return found


def invalid_spec_status(
    generation: int, message: str, previous: dict[str, Any] | None, timestamp: str | None = None
) -> dict[str, Any]:
    """Status for a spec the models refuse (only possible if the CRD schema was bypassed)."""
    previous = previous or {}
    old = previous.get("conditions") or []
    stamp = timestamp or now()
    reason = Reason.INVALID_SPEC
    return {
        **{k: v for k, v in previous.items() if k != "conditions"},
        "observedGeneration": generation,
        "conditions": [
            condition(c.COND_READY, False, reason, message, generation, old, stamp),
            condition(
                c.COND_RECONCILING,
                False,
                reason,
                "waiting for the spec to be fixed",
                generation,
                old,
                stamp,
            ),
            condition(c.COND_STALLED, True, reason, message, generation, old, stamp),
        ],
    }
