"""The agent's own ServiceAccount: the identity mesh policies name."""

from __future__ import annotations

from typing import Any

from agentfleet.api.models import AIAgent
from agentfleet.render.common import object_meta, own_identity
from agentfleet.render.context import RenderContext


def render(agent: AIAgent, context: RenderContext) -> list[dict[str, Any]]:
    if not own_identity(agent):
        return []  # the user brings an existing identity; it is not ours to create or change
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": object_meta(agent),
            # Pods opt in to a token per agent (spec.automountServiceAccountToken).
            "automountServiceAccountToken": False,
        }
    ]
