"""The agent's Deployment: one container `agent` with the four fixed ports and probes."""

from __future__ import annotations

import copy
from typing import Any

from agentfleet.api import constants as c
from agentfleet.api.models import AgentSpec, AIAgent
from agentfleet.render import gpu, istio, keda, tracing
from agentfleet.render.common import labels, object_meta, selector_labels, service_account_name
from agentfleet.render.context import RenderContext

RESTRICTED_POD_SECURITY: dict[str, Any] = {
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _http_probe(path: str, period_seconds: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": c.HEALTH.name, "scheme": "HTTP"},
        "periodSeconds": period_seconds,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }


def render(agent: AIAgent, context: RenderContext) -> list[dict[str, Any]]:
    deployment_spec: dict[str, Any] = {
        "replicas": keda.deployment_replicas(agent),
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": selector_labels(agent)},
        "template": {
            "metadata": {
                "labels": {**labels(agent), **istio.pod_labels(agent, context)},
                "annotations": {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(c.METRICS.number),
                    "prometheus.io/path": c.METRICS_PATH,
                    **istio.pod_annotations(agent, context),
                },
            },
            "spec": _pod_spec(agent, context),
        },
    }
    if deployment_spec["replicas"] is None:
        del deployment_spec["replicas"]  # autoscaled: the HPA's field (see render/keda.py)
    gpu.hold_for_placement(deployment_spec["template"], agent.spec.gpu, context.config)
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": object_meta(agent),
            "spec": deployment_spec,
        }
    ]


def _pod_spec(agent: AIAgent, context: RenderContext) -> dict[str, Any]:
    spec = agent.spec
    placement = spec.placement
    pod: dict[str, Any] = {
        "serviceAccountName": service_account_name(agent),
        # No API token in the agent's pods unless it asks for one: an agent is a workload,
        # not a Kubernetes client, and a mounted token is what an attacker looks for first.
        "automountServiceAccountToken": bool(spec.automount_service_account_token),
        # Thousands of agent Services per namespace would otherwise each inject env vars.
        "enableServiceLinks": False,
        "securityContext": merged(RESTRICTED_POD_SECURITY, spec.pod_security_context),
        "containers": [_container(agent, context)],
    }
    optional: dict[str, Any] = {
        "runtimeClassName": spec.runtime_class_name,
        "imagePullSecrets": _dump_list(spec.image_pull_secrets),
        "volumes": _dump_list(spec.volumes),
        "nodeSelector": placement.node_selector if placement else None,
        "tolerations": _dump_list(placement.tolerations) if placement else None,
        "topologySpreadConstraints": placement.topology_spread_constraints if placement else None,
        "affinity": _affinity(spec, context),
    }
    pod.update({key: value for key, value in optional.items() if value})
    return pod


def _container(agent: AIAgent, context: RenderContext) -> dict[str, Any]:
    spec = agent.spec
    probes = spec.probes
    container: dict[str, Any] = {
        "name": c.CONTAINER_NAME,
        "image": spec.image,
        "ports": [{"name": p.name, "containerPort": p.number, "protocol": "TCP"} for p in c.PORTS],
        "env": _env(agent, context),
        "livenessProbe": (probes and probes.liveness) or _http_probe(c.LIVENESS_PATH, 10),
        "readinessProbe": (probes and probes.readiness) or _http_probe(c.READINESS_PATH, 5),
        "securityContext": merged(RESTRICTED_CONTAINER_SECURITY, spec.security_context),
    }
    optional: dict[str, Any] = {
        "imagePullPolicy": spec.image_pull_policy.value if spec.image_pull_policy else None,
        "command": spec.command,
        "args": spec.args,
        "envFrom": _dump_list(spec.env_from),
        "startupProbe": probes.startup if probes else None,
        "resources": _resources(spec),
        "volumeMounts": _dump_list(spec.volume_mounts),
    }
    container.update({key: value for key, value in optional.items() if value})
    return container


def _env(agent: AIAgent, context: RenderContext) -> list[dict[str, Any]]:
    """Built-in variables first (the agent's identity and ports, then OpenTelemetry's and
    proxyless gRPC's, which may refer to the first ones); a user variable of the same name
    replaces the built-in one."""

    def field(path: str) -> dict[str, Any]:
        return {"fieldRef": {"fieldPath": path}}

    builtin: list[dict[str, Any]] = [
        {"name": "AGENTFLEET_AGENT_NAME", "value": agent.metadata.name},
        {"name": "AGENTFLEET_AGENT_TYPE", "value": agent.spec.agent_type.value},
        {"name": "AGENTFLEET_NAMESPACE", "valueFrom": field("metadata.namespace")},
        {"name": "AGENTFLEET_POD_NAME", "valueFrom": field("metadata.name")},
        *(
            {"name": f"AGENTFLEET_{p.endpoint_key.upper()}_PORT", "value": str(p.number)}
            for p in c.PORTS
        ),
        *tracing.container_env(agent, context),
        *istio.container_env(agent, context),
    ]
    by_name = {var["name"]: var for var in builtin}
    by_name.update({var["name"]: var for var in _dump_list(agent.spec.env) or []})
    return list(by_name.values())


def _resources(spec: AgentSpec) -> dict[str, Any]:
    requests = dict(spec.resources.requests or {}) if spec.resources else {}
    limits = dict(spec.resources.limits or {}) if spec.resources else {}
    limits.update(gpu.resource_limits(spec.gpu))
    return {key: value for key, value in (("requests", requests), ("limits", limits)) if value}


def _affinity(spec: AgentSpec, context: RenderContext) -> dict[str, Any] | None:
    """The user's affinity with the GPU requirements ANDed into every required node term.
    With the placement ledger on, it matches GPUs itself (and explains a refusal with
    numbers), so the scheduler only gets the node it chose."""
    user = spec.placement.affinity if spec.placement else None
    if context.config.gpu_placement:
        return user
    requirements = gpu.node_requirements(spec.gpu)
    if not requirements:
        return user
    affinity = copy.deepcopy(user or {})
    required = affinity.setdefault("nodeAffinity", {}).setdefault(
        "requiredDuringSchedulingIgnoredDuringExecution", {}
    )
    terms = required.get("nodeSelectorTerms") or [{}]
    required["nodeSelectorTerms"] = [
        {
            **term,
            "matchExpressions": [*term.get("matchExpressions", []), *copy.deepcopy(requirements)],
        }
        for term in terms
    ]
    return affinity


def merged(default: dict[str, Any], user: dict[str, Any] | None) -> dict[str, Any]:
    """The user's settings over the restricted default: a key the user sets wins (nested
    objects such as capabilities merge key by key), every other default stays."""
    result = copy.deepcopy(default)
    for key, value in (user or {}).items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _dump_list(items: list[Any] | None) -> list[dict[str, Any]] | None:
    if not items:
        return None
    return [item.model_dump(by_alias=True, exclude_none=True) for item in items]
