"""Distributed tracing of an agent: the OpenTelemetry environment of its pods, and in the
mesh an Istio Telemetry object for its proxy.

Tracing is on for an agent when its `spec.observability.tracing` says so, or, unset, when
the installation gives agents an OTLP endpoint (`--agent-tracing-endpoint`); `enabled: false`
turns it off. Then:

- its container gets the standard OpenTelemetry SDK variables (any SDK reads them):
  `OTEL_SERVICE_NAME` (the agent's name), `OTEL_RESOURCE_ATTRIBUTES` (namespace, Deployment,
  pod, agent type, the image's version), `OTEL_TRACES_SAMPLER=parentbased_traceidratio`
  with the sampling share, and `OTEL_EXPORTER_OTLP_ENDPOINT` when an endpoint is known. A
  variable the agent sets itself in `spec.env` wins.
- a mesh agent's proxy reports spans for calls to and from it at the same percentage, to the
  mesh's tracing provider (`--mesh-tracing-provider`, else the mesh's default): a Telemetry
  object with a `selector` on its pods in sidecar mode, or with `targetRefs` to its Service in
  ambient mode, which only a waypoint applies (ztunnel is L4 and makes no spans: an ambient
  agent without a waypoint gets none). A proxyless gRPC agent has no proxy to report spans,
  so it has the environment only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentfleet.api.models import AIAgent, MeshMode
from agentfleet.render import istio
from agentfleet.render.common import object_meta, selector_labels
from agentfleet.render.context import RenderContext

TELEMETRY_API = "telemetry.istio.io/v1"
SAMPLER = "parentbased_traceidratio"


@dataclass(frozen=True)
class AgentTracing:
    sampling_percent: float
    endpoint: str | None


def effective(agent: AIAgent, context: RenderContext) -> AgentTracing | None:
    """The agent's tracing with the installation's defaults applied; None when it is off."""
    config = context.config
    observability = agent.spec.observability
    own = observability.tracing if observability else None
    if own is None and not config.agent_tracing_endpoint:
        return None
    if own is not None and not own.enabled:
        return None
    percent = config.agent_tracing_sampling_percent
    if own is not None and own.sampling_percent is not None:
        percent = own.sampling_percent
    endpoint = (own.endpoint if own else None) or config.agent_tracing_endpoint or None
    return AgentTracing(percent, endpoint)


def image_version(image: str) -> str:
    """The version an image reference names: its tag, else its digest, else `latest`."""
    name, _, digest = image.partition("@")
    if digest:
        return digest
    last = name.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else "latest"


def container_env(agent: AIAgent, context: RenderContext) -> list[dict[str, Any]]:
    tracing = effective(agent, context)
    if tracing is None:
        return []
    meta = agent.metadata
    attributes = {
        "k8s.namespace.name": meta.namespace,
        "k8s.deployment.name": meta.name,
        # Kubernetes expands $(VAR) from the variables before it (render/deployment.py).
        "k8s.pod.name": "$(AGENTFLEET_POD_NAME)",
        "service.version": image_version(agent.spec.image),
        "agentfleet.agent.type": agent.spec.agent_type.value,
    }
    env = [
        {"name": "OTEL_SERVICE_NAME", "value": meta.name},
        {
            "name": "OTEL_RESOURCE_ATTRIBUTES",
            "value": ",".join(f"{key}={value}" for key, value in attributes.items()),
        },
        {"name": "OTEL_TRACES_SAMPLER", "value": SAMPLER},
        {"name": "OTEL_TRACES_SAMPLER_ARG", "value": _ratio(tracing.sampling_percent)},
    ]
    if tracing.endpoint:
        env.append({"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": tracing.endpoint})
    return env


def _ratio(percent: float) -> str:
    return f"{percent / 100:.6g}"


def telemetries(agent: AIAgent, context: RenderContext) -> list[dict[str, Any]]:
    tracing = effective(agent, context)
    mesh_plan = istio.plan(agent, context)
    if tracing is None or mesh_plan.mode == MeshMode.NONE or istio.proxyless(agent, context):
        return []
    if mesh_plan.mode == MeshMode.AMBIENT:
        if mesh_plan.waypoint is None:
            return []  # ztunnel makes no spans
        target: dict[str, Any] = {
            "targetRefs": [{"group": "", "kind": "Service", "name": agent.metadata.name}]
        }
    else:
        target = {"selector": {"matchLabels": selector_labels(agent)}}
    rule: dict[str, Any] = {"randomSamplingPercentage": tracing.sampling_percent}
    provider = context.config.mesh_tracing_provider
    if provider:
        rule = {"providers": [{"name": provider}], **rule}
    return [
        {
            "apiVersion": TELEMETRY_API,
            "kind": "Telemetry",
            "metadata": object_meta(agent),
            "spec": {**target, "tracing": [rule]},
        }
    ]
