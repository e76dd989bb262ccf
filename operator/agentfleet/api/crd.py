"""Generate the AIAgent CustomResourceDefinition from the pydantic models.

pydantic emits JSON Schema 2020-12; a CRD needs a *structural* OpenAPI v3 schema: no
`$ref`, no `null` types, no `title`, no `additionalProperties: false`. This module does that
translation and adds what only the CRD knows (names, subresources, printer columns).
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from agentfleet.api import constants as c
from agentfleet.api.models import AgentSpec, AgentStatus

_DROPPED_KEYS = {"title", "$defs"}
_EMPTY_DEFAULTS: tuple[Any, ...] = (None, [], {})


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's validation schema as a structural OpenAPI v3 schema for a CRD."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    definitions = schema.get("$defs", {})
    result: dict[str, Any] = _convert(schema, definitions)
    return result


def _convert(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_convert(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    node = _collapse_optional(node)
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[-1]]
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return _convert({**target, **siblings}, definitions)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "default" and value in _EMPTY_DEFAULTS:
            continue
        if key == "additionalProperties" and isinstance(value, bool):
            continue  # structural schemas forbid it next to `properties`; pruning does the job
        if key == "const":
            out["enum"] = [value]
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # JSON Schema 2020 gives the bound; OpenAPI v3 (CRDs) a flag next to it.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
            continue
        if key == "properties":
            out[key] = {name: _convert(sub, definitions) for name, sub in value.items()}
            continue
        out[key] = _convert(value, definitions)
    if out.get("enum") and "type" not in out:
        out["type"] = "string"
    return out


def _collapse_optional(node: dict[str, Any]) -> dict[str, Any]:
    """`X | None` is `anyOf: [X, {type: null}]`; in a CRD it is just an optional X."""
    variants = node.get("anyOf")
    if not variants or {"type": "null"} not in variants:
        return node
    rest = [v for v in variants if v != {"type": "null"}]
    siblings = {k: v for k, v in node.items() if k != "anyOf"}
    if len(rest) == 1:
        return {**rest[0], **siblings}
    return {**siblings, "anyOf": rest}


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Type", "type": "string", "jsonPath": ".spec.agentType"},
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"},
    {"name": "Available", "type": "integer", "jsonPath": ".status.availableReplicas"},
    {"name": "Node/GPU", "type": "string", "jsonPath": ".status.placement.summary"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Reason",
        "type": "string",
        "priority": 1,
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
    },
    {"name": "Endpoint", "type": "string", "priority": 1, "jsonPath": ".status.endpoints.http"},
    {
        "name": "Message",
        "type": "string",
        "priority": 1,
        "jsonPath": '.status.conditions[?(@.type=="Ready")].message',
    },
]

# The agent's name becomes its Service's name, which must be a DNS-1035 label.
NAME_RULE = {
    "rule": "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')"
    " && size(self.metadata.name) <= 63",
    "message": "an AIAgent name must be a DNS-1035 label (lowercase letters, digits, '-', starting"
    " with a letter, at most 63 characters) because it names the agent's Service",
}


def custom_resource_definition() -> dict[str, Any]:
    spec_schema = structural_schema(AgentSpec)
    status_schema = structural_schema(AgentStatus)
    status_schema["description"] = "Observed state of the agent, written by the operator."
    return {
        "apiVersion": c.CRD_API,
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": c.CRD_NAME,
            "labels": {c.LABEL_PART_OF: c.PART_OF},
        },
        "spec": {
            "group": c.GROUP,
            "names": {
                "kind": c.KIND,
                "listKind": f"{c.KIND}List",
                "plural": c.PLURAL,
                "singular": c.SINGULAR,
                "shortNames": [c.SHORT_NAME],
                "categories": ["all", "agentfleet"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": c.VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "description": DESCRIPTION,
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                            "x-kubernetes-validations": [NAME_RULE],
                        }
                    },
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                }
            ],
        },
    }


DESCRIPTION = (
    "AIAgent runs one AI agent as a Deployment with fixed ports, a Service with stable DNS"
    " and a ServiceAccount identity."
)
HEADER = "# Generated by `agentfleet crd` from operator/agentfleet/api/models.py. Do not edit.\n"


def render_yaml() -> str:
    return HEADER + yaml.safe_dump(custom_resource_definition(), sort_keys=False, width=100)
