"""The agent's own ServiceAccount: the identity mesh policies will name."""

from __future__ import annotations

from typing import Any

from agentfleet.models import AIAgent
from agentfleet.render.common import object_meta


def render(agent: AIAgent) -> list[dict[str, Any]]:
    if agent.spec.service_account_name:
        return []  # the user brings an existing identity; it is not ours to create or delete
    return [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": object_meta(agent)}]
