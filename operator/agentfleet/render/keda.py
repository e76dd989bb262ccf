"""The agent's KEDA ScaledObject, and who owns the Deployment's replicas while it exists.

One ScaledObject per autoscaled agent, owned by the AIAgent and targeting its Deployment.
KEDA turns it into an HPA (`keda-hpa-<name>`) that owns `spec.replicas` from then on, so
the Deployment we apply leaves replicas out (see `deployment_replicas`) and the count the
agent ran with is handed over first (see `handover_replicas`) instead of being reset to 1.

Settings come in layers, each replacing the fields it sets: KEDA's defaults, the rollout
plan's range for the agent type, the installation's defaults for the type
(`agentfleet run --autoscaling-defaults FILE`), then the agent's own `spec.autoscaling`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from agentfleet.api import constants as c
from agentfleet.api.models import AgentType, AIAgent, Autoscaling, Fallback, Trigger
from agentfleet.render.common import object_meta
from agentfleet.render.context import RenderContext

API_VERSION = "keda.sh/v1alpha1"
KIND = "ScaledObject"
PAUSED_ANNOTATION = "autoscaling.keda.sh/paused"

# The bottom layer: KEDA's own polling and cooldown defaults, written out so that a rendered
# ScaledObject says what it does, and our default trigger: 5 requests/s per replica.
KEDA_DEFAULTS = Autoscaling.model_validate(
    {
        "pollingIntervalSeconds": 30,
        "cooldownPeriodSeconds": 300,
        "triggers": [{"requestsPerSecond": {"threshold": 5}}],
    }
)

# The rollout plan's replica ranges per agent type (the orchestrator is fixed at 3).
TYPE_RANGES: dict[AgentType, tuple[int, int]] = {
    AgentType.ORCHESTRATOR: (3, 3),
    AgentType.CODING: (5, 100),
    AgentType.TESTING: (8, 200),
    AgentType.SECURITY: (6, 150),
    AgentType.COMPLIANCE: (4, 100),
    AgentType.DOCUMENTATION: (3, 50),
    AgentType.DISCOVERY: (2, 20),
    AgentType.CUSTOM: (1, 10),
}


@dataclass(frozen=True)
class Scaling:
    """The settings an agent's ScaledObject is rendered from, every layer applied."""

    min_replicas: int
    max_replicas: int
    idle_replicas: int | None
    polling_interval_seconds: int
    cooldown_period_seconds: int
    fallback: Fallback | None
    behavior: dict[str, Any] | None
    paused: bool
    triggers: tuple[Trigger, ...]


def autoscaled(agent: AIAgent) -> bool:
    scaling = agent.spec.autoscaling
    return scaling is not None and scaling.enabled


def effective(agent: AIAgent, installation: dict[str, Autoscaling]) -> Scaling:
    """The agent's settings over the installation's over the type's over KEDA's."""
    kind = agent.spec.agent_type
    low, high = TYPE_RANGES[kind]
    layers = [
        KEDA_DEFAULTS,
        Autoscaling.model_validate({"minReplicas": low, "maxReplicas": high}),
        installation.get(kind.value),
        agent.spec.autoscaling,
    ]
    return _merge([layer for layer in layers if layer is not None])


def _merge(layers: list[Autoscaling]) -> Scaling:
    values: dict[str, Any] = {}
    for layer in layers:
        given = {k: getattr(layer, k) for k in layer.model_fields_set if k != "enabled"}
        values.update(given)
        # A layer that moves one end of the range past the other moves both: `maxReplicas: 3`
        # on a coding agent (5-100 by default) means 3-3, not an invalid 5-3.
        if "min_replicas" in given and "max_replicas" not in given:
            values["max_replicas"] = max(values["max_replicas"], given["min_replicas"])
        if "max_replicas" in given and "min_replicas" not in given:
            values["min_replicas"] = min(values["min_replicas"], given["max_replicas"])
    return Scaling(
        min_replicas=values["min_replicas"],
        max_replicas=values["max_replicas"],
        idle_replicas=values.get("idle_replicas"),
        polling_interval_seconds=values["polling_interval_seconds"],
        cooldown_period_seconds=values["cooldown_period_seconds"],
        fallback=values.get("fallback"),
        behavior=values.get("behavior"),
        paused=bool(values.get("paused")),
        triggers=tuple(values["triggers"]),
    )


def render(agent: AIAgent, context: RenderContext) -> list[dict[str, Any]]:
    if not autoscaled(agent):
        return []
    scaling = effective(agent, context.config.autoscaling_defaults)
    spec: dict[str, Any] = {
        "scaleTargetRef": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": agent.metadata.name,
        },
        "pollingInterval": scaling.polling_interval_seconds,
        "cooldownPeriod": scaling.cooldown_period_seconds,
        "minReplicaCount": scaling.min_replicas,
        "maxReplicaCount": scaling.max_replicas,
    }
    if scaling.idle_replicas is not None:
        spec["idleReplicaCount"] = scaling.idle_replicas
    if scaling.fallback is not None:
        spec["fallback"] = scaling.fallback.model_dump(
            by_alias=True, exclude_none=True, mode="json"
        )
    if scaling.behavior:
        spec["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": scaling.behavior}}
    spec["triggers"] = [
        keda_trigger(trigger, agent, context.config.prometheus_address)
        for trigger in scaling.triggers
    ]
    metadata = object_meta(agent)
    if scaling.paused:
        metadata["annotations"] = {PAUSED_ANNOTATION: "true"}
    return [{"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}]


def keda_trigger(trigger: Trigger, agent: AIAgent, prometheus: str) -> dict[str, Any]:
    """One of our triggers as KEDA spells it (https://keda.sh/docs/2.18/scalers/)."""
    if trigger.requests_per_second is not None:
        rps = trigger.requests_per_second
        query = f"sum(rate({rps.metric}{{{pods_selector(agent)}}}[{rps.window}]))"
        return _prometheus(prometheus, agent, query, rps.threshold, rps.activation_threshold)
    if trigger.queue_depth is not None:
        depth = trigger.queue_depth
        return _prometheus(
            prometheus, agent, depth.query, depth.threshold, depth.activation_threshold
        )
    for resource, usage in (("cpu", trigger.cpu), ("memory", trigger.memory)):
        if usage is not None:
            return {
                "type": resource,
                "metricType": "Utilization",
                # Only the agent's container: a mesh sidecar's use does not count.
                "metadata": {"value": str(usage.utilization), "containerName": c.CONTAINER_NAME},
            }
    assert trigger.scaler is not None  # the CRD allows exactly one kind per trigger
    return trigger.scaler.model_dump(by_alias=True, exclude_none=True, mode="json")


def pods_selector(agent: AIAgent) -> str:
    """PromQL label matchers for the agent's pods: `namespace` and `pod` are the labels both
    prometheus-operator monitors and annotation-based scrape configs attach. Pod names of a
    Deployment are `<name>-<template hash>-<suffix>`, so another agent whose name starts
    with this one's does not match."""
    name, namespace = agent.metadata.name, agent.metadata.namespace
    return f'namespace="{namespace}",pod=~"{name}-[a-z0-9]+-[a-z0-9]+"'


def _prometheus(
    address: str, agent: AIAgent, query: str, threshold: float, activation: float | None
) -> dict[str, Any]:
    """A prometheus trigger on the installation's Prometheus (never an address of the
    agent's choosing). `namespace` makes KEDA send `?namespace=<the agent's>` with every
    query: a tenancy-aware front (Thanos Querier's tenancy port, prom-label-proxy) behind
    --prometheus-address then confines a queueDepth query to the agent's own namespace;
    a plain Prometheus ignores it."""
    metadata = {
        "serverAddress": address,
        "namespace": agent.metadata.namespace,
        "query": query,
        "threshold": _number(threshold),
    }
    if activation is not None:
        metadata["activationThreshold"] = _number(activation)
    return {"type": "prometheus", "metricType": "AverageValue", "metadata": metadata}


def _number(value: float) -> str:
    return f"{value:g}"


# --- who owns the Deployment's replicas ------------------------------------------------------


def deployment_replicas(agent: AIAgent) -> int | None:
    """`spec.replicas` in our Deployment apply: the agent's fixed count, or none at all
    while autoscaling is on (the HPA's field: applying any value would fight it)."""
    return None if autoscaled(agent) else agent.spec.replicas


def handover_replicas(agent: AIAgent, context: RenderContext) -> int | None:
    """The count another field manager must apply before (or, for a Deployment just created
    without replicas, right after) our apply that leaves replicas out; None if nothing needs
    handing over. `context.deployment` is the Deployment as the cluster holds it.

    Server-side apply resets a field to its default (1 replica) when the only manager that
    owned it stops applying it. So while we still own `spec.replicas` (autoscaling was just
    turned on) the live count is handed over. A Deployment nobody owns a non-zero count of
    was created without it and runs the default 1: it gets the agent's minimum instead of
    waiting for the HPA. Nobody owning a count of 0 is KEDA's scale to zero (the scale
    subresource omits 0, so that update owns nothing): left alone, like any count the HPA or
    anyone else owns."""
    live = context.deployment
    if not autoscaled(agent) or live is None:
        return None
    if not live.replicas_managers:
        if live.replicas == 0:
            return None
        return effective(agent, context.config.autoscaling_defaults).min_replicas
    if c.FIELD_MANAGER in live.replicas_managers and live.replicas is not None:
        return live.replicas
    return None


# --- what KEDA says -----------------------------------------------------------------------


_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")


def health(body: dict[str, Any]) -> tuple[bool, str, str] | None:
    """ScalerReady from KEDA's own conditions on the ScaledObject: its reason and message,
    False while paused, falling back or not ready, and while KEDA has not looked at it."""
    name = body["metadata"]["name"]
    status = body.get("status") or {}
    conditions = {cond.get("type"): cond for cond in status.get("conditions") or []}
    ready = conditions.get("Ready") or {}
    if ready.get("status") not in ("True", "False"):
        return (
            False,
            c.Reason.WAITING_FOR_KEDA,
            f"waiting for KEDA to reconcile ScaledObject {name} (is the KEDA operator running?)",
        )
    for kind in ("Paused", "Fallback"):
        said = conditions.get(kind) or {}
        if said.get("status") == "True":
            return False, _reason(said, kind), f"KEDA: {_message(said)}"
    if ready["status"] == "False":
        return False, _reason(ready, "NotReady"), f"KEDA: {_message(ready)}"
    spec = body.get("spec") or {}
    hpa = status.get("hpaName") or f"keda-hpa-{name}"
    scale = f"HPA {hpa} scales {spec.get('minReplicaCount')}-{spec.get('maxReplicaCount')}"
    # Active only when it is: its Unknown -> False after KEDA's first poll would otherwise
    # cost every new agent one more status write.
    active = conditions.get("Active") or {}
    said = f"; {_message(active)}" if active.get("status") == "True" else ""
    return True, _reason(ready, "Ready"), f"KEDA: {_message(ready)}{said} ({scale})"


def _reason(condition: dict[str, Any], fallback: str) -> str:
    reason = str(condition.get("reason") or "")
    return reason if _REASON.match(reason) else fallback


def _message(condition: dict[str, Any]) -> str:
    return str(condition.get("message") or condition.get("reason") or "")[:2000]


# --- the installation's defaults -------------------------------------------------------------


def load_defaults(text: str) -> dict[str, Autoscaling]:
    """`--autoscaling-defaults FILE`: YAML mapping agent types to spec.autoscaling fields,
    checked like an agent's spec (the CRD's rules, in Python) so a bad file stops the
    operator at start rather than every agent of that type at KEDA."""
    raw = yaml.safe_load(text) or {}
    if not isinstance(raw, dict):
        raise ValueError("autoscaling defaults must map agent types to autoscaling settings")
    known = {kind.value for kind in AgentType}
    defaults: dict[str, Autoscaling] = {}
    for kind, settings in raw.items():
        if kind not in known:
            raise ValueError(f"autoscaling defaults: unknown agent type {kind!r}")
        if not isinstance(settings, dict) or "enabled" in settings:
            raise ValueError(
                f"autoscaling defaults for {kind}: expected autoscaling fields (minReplicas,"
                " triggers, ...); `enabled` is each agent's own choice"
            )
        parsed = Autoscaling.model_validate(settings)
        low, high = TYPE_RANGES[AgentType(kind)]
        base = Autoscaling.model_validate({"minReplicas": low, "maxReplicas": high})
        problems = scaling_problems(_merge([KEDA_DEFAULTS, base, parsed]))
        if problems:
            raise ValueError(f"autoscaling defaults for {kind}: " + "; ".join(problems))
        defaults[kind] = parsed
    return defaults


def scaling_problems(scaling: Scaling) -> list[str]:
    """What KEDA would refuse (the same rules the CRD states in CEL for an agent's spec)."""
    event = any(t.cpu is None and t.memory is None for t in scaling.triggers)
    problems = []
    if scaling.min_replicas > scaling.max_replicas:
        problems.append("minReplicas must be <= maxReplicas")
    if scaling.min_replicas == 0 and not event:
        problems.append("minReplicas 0 needs a trigger other than cpu or memory")
    if scaling.idle_replicas is not None:
        if scaling.idle_replicas != 0 or scaling.idle_replicas >= scaling.min_replicas:
            problems.append("idleReplicas can only be 0, and must be < minReplicas")
        if not event:
            problems.append("idleReplicas needs a trigger other than cpu or memory")
    if scaling.fallback is not None and not event:
        problems.append("fallback needs a trigger other than cpu or memory")
    return problems
