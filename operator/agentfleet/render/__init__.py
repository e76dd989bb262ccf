"""Pure functions from an AIAgent to the Kubernetes objects it should own.

No API calls here: every renderer takes the parsed agent and returns plain dicts, which is
what makes them testable against golden files.
"""

from __future__ import annotations

from typing import Any

from agentfleet.models import AIAgent
from agentfleet.render import deployment, service, serviceaccount

# Apply order matters once: the ServiceAccount must exist before the ReplicaSet creates Pods.
RENDERERS = (serviceaccount.render, service.render, deployment.render)


def desired_objects(agent: AIAgent) -> list[dict[str, Any]]:
    return [obj for render in RENDERERS for obj in render(agent)]
