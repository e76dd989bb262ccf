"""The traffic rules a mesh agent gets: retries and outlier detection by default.

The rollout plan's Phase D ("enable mTLS, retries, outlier-detection ... crashes no longer
propagate") as the default: every mesh agent gets retries and outlier detection, with
settings chosen for its type, whether or not its spec says anything about traffic.

Settings come in layers, each replacing the fields it sets (`timeout`, `retries`,
`outlierDetection`, `connectionPool`): the built-in defaults of the agent's type
(`TYPE_DEFAULTS`), the installation's defaults for the type (`agentfleet run
--traffic-defaults FILE`), then the agent's own `spec.mesh.traffic`. `{enabled: false}` in any
layer turns retries or outlier detection off; nothing else does. Fault injection is the
agent's own only (a chaos run is never an installation default).

Where they are applied (render/istio.py, render/gateway.py): outlier detection and connection
pools on a DestinationRule, which sidecars and waypoints both apply; retries on a
VirtualService (Gateway API v1.4 has `rules.retry` only in its experimental channel). In
ambient mode L7 rules need a waypoint: an ambient agent gets one (the namespace's) unless it
sets `waypoint: none`, which keeps it on ztunnel's L4 path without them.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from agentfleet.api.models import AgentType, Traffic

# Retry only what cannot have done work twice: the connection failed or was refused, or gRPC
# says UNAVAILABLE/CANCELLED (the call never ran). Istio's own default adds 503 answers.
SAFE_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled"


def _traffic(retries: dict[str, Any], outlier: dict[str, Any]) -> Traffic:
    return Traffic.model_validate({"retries": retries, "outlierDetection": outlier})


_OUTLIER = {"consecutive5xxErrors": 5, "interval": "10s", "baseEjectionTime": "30s"}

# The built-in layer. Outlier detection ejects a replica after 5 consecutive 5xx answers for
# 30 s, at most half of the replicas at once, unless the type says otherwise.
TYPE_DEFAULTS: dict[AgentType, Traffic] = {
    # Routes every task, fixed at 3 replicas: one more retry (each goes to another replica,
    # Istio's previous-hosts predicate), and never more than one of three ejected.
    AgentType.ORCHESTRATOR: _traffic(
        {"attempts": 3, "retryOn": SAFE_RETRY_ON},
        {**_OUTLIER, "maxEjectionPercent": 34},
    ),
    # Coding tasks run for minutes on GPUs: retry once, and only a call that never reached
    # a replica; a replica that fails keeps its place longer before it is tried again.
    AgentType.CODING: _traffic(
        {"attempts": 1, "retryOn": "connect-failure,refused-stream"},
        {"consecutive5xxErrors": 5, "interval": "30s", "baseEjectionTime": "60s"},
    ),
    AgentType.TESTING: _traffic({"attempts": 2, "retryOn": SAFE_RETRY_ON}, _OUTLIER),
    AgentType.SECURITY: _traffic({"attempts": 2, "retryOn": SAFE_RETRY_ON}, _OUTLIER),
    AgentType.COMPLIANCE: _traffic({"attempts": 2, "retryOn": SAFE_RETRY_ON}, _OUTLIER),
    AgentType.DOCUMENTATION: _traffic({"attempts": 2, "retryOn": SAFE_RETRY_ON}, _OUTLIER),
    # Registrations and look-ups are idempotent: retried on 5xx answers too.
    AgentType.DISCOVERY: _traffic(
        {"attempts": 3, "retryOn": SAFE_RETRY_ON + ",5xx"},
        {**_OUTLIER, "consecutive5xxErrors": 3},
    ),
    AgentType.CUSTOM: _traffic({"attempts": 2, "retryOn": SAFE_RETRY_ON}, _OUTLIER),
}

FIELDS = ("timeout", "retries", "outlier_detection", "connection_pool", "fault_injection")
_SWITCHES = ("retries", "outlier_detection")  # the rules with an `enabled` flag
_ALIAS = {name: Traffic.model_fields[name].alias or name for name in FIELDS}


def _on(value: Any) -> bool:
    """Is this rule (a model or its raw dict) set and not switched off?"""
    if value is None:
        return False
    if isinstance(value, dict):
        return value.get("enabled", True) is not False
    return getattr(value, "enabled", True) is not False


def effective(
    agent_type: str, own: Traffic | None, installation: dict[str, Traffic]
) -> Traffic | None:
    """The agent's rules over the installation's over the type's; rules switched off are
    dropped. None when nothing is left."""
    values: dict[str, Any] = {}
    for layer in (_builtin(agent_type), installation.get(agent_type), own):
        if layer is not None:
            values.update({k: getattr(layer, k) for k in FIELDS if getattr(layer, k) is not None})
    kept = {key: value for key, value in values.items() if _on(value)}
    return Traffic.model_construct(**kept) if kept else None


def has_rules(
    raw: dict[str, Any] | None, agent_type: str, installation: dict[str, Traffic]
) -> bool:
    """Does an agent have L7 rules, read from its raw spec.mesh.traffic (the other agents of
    a namespace are known only as raw specs)? Cheap: no parsing."""
    raw = raw if isinstance(raw, dict) else {}
    defaults = [installation.get(agent_type), _builtin(agent_type)]
    for field in FIELDS:
        value = raw.get(_ALIAS[field])
        if value is None:
            value = next(
                (getattr(d, field) for d in defaults if d and getattr(d, field) is not None), None
            )
        if _on(value):
            return True
    return False


def _builtin(agent_type: str) -> Traffic | None:
    try:
        return TYPE_DEFAULTS[AgentType(agent_type)]
    except ValueError:
        return None


def load_defaults(text: str) -> dict[str, Traffic]:
    """`--traffic-defaults FILE`: YAML mapping agent types to spec.mesh.traffic fields."""
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError("traffic defaults must map agent types to traffic settings")
    defaults: dict[str, Traffic] = {}
    for kind, fields in data.items():
        if kind not in {t.value for t in AgentType}:
            raise ValueError(f"traffic defaults: unknown agent type {kind!r}")
        if not isinstance(fields, dict):
            raise ValueError(
                f"traffic defaults for {kind}: expected traffic fields (retries,"
                " outlierDetection, timeout, connectionPool)"
            )
        if "faultInjection" in fields:
            raise ValueError(
                f"traffic defaults for {kind}: faultInjection is per agent (a chaos run),"
                " never an installation default"
            )
        try:
            defaults[kind] = Traffic.model_validate(fields)
        except ValidationError as error:
            problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()]
            raise ValueError(f"traffic defaults for {kind}: " + "; ".join(problems)) from error
    return defaults
