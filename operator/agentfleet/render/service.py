"""ClusterIP Service: `<name>.<namespace>.svc.<domain>` on the four fixed ports."""

from __future__ import annotations

from typing import Any

from agentfleet.api import constants as c
from agentfleet.api.models import AIAgent
from agentfleet.render import istio
from agentfleet.render.common import object_meta, selector_labels
from agentfleet.render.context import RenderContext


def render(agent: AIAgent, context: RenderContext) -> list[dict[str, Any]]:
    meta = object_meta(agent)
    meta["labels"].update(istio.service_labels(agent, context))  # its waypoint, if any
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "type": "ClusterIP",
                "selector": selector_labels(agent),
                "ports": [
                    {
                        "name": port.name,
                        "port": port.number,
                        "targetPort": port.name,
                        "protocol": "TCP",
                        "appProtocol": port.app_protocol,
                    }
                    for port in c.PORTS
                ],
            },
        }
    ]


def endpoints(agent: AIAgent, cluster_domain: str) -> dict[str, str]:
    host = f"{agent.metadata.name}.{agent.metadata.namespace}.svc.{cluster_domain}"
    return {port.endpoint_key: f"{host}:{port.number}" for port in c.PORTS}
