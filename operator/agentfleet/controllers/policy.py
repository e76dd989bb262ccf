"""What an agent may ask for, beyond what the CRD schema can say.

Whoever can create an AIAgent gets pods made by the operator. hostPath volumes and privileged
settings would let that person reach the node, so they are refused unless the installation
allows them (`agentfleet run --allow-host-path --allow-privileged`). A refused agent changes
nothing in the cluster and reports `Stalled=True`, reason PolicyViolation, naming each field.
"""

from __future__ import annotations

from typing import Any

from agentfleet.api.config import Policy
from agentfleet.api.models import AIAgent

# Pod Security Standards "restricted" allows adding only this capability.
_ALLOWED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})


def violations(agent: AIAgent, policy: Policy) -> list[str]:
    """One sentence per refused field; empty when the agent is allowed."""
    found: list[str] = []
    spec = agent.spec
    if not policy.allow_host_path:
        for i, volume in enumerate(spec.volumes or []):
            if (volume.model_extra or {}).get("hostPath") is not None:
                found.append(f"spec.volumes[{i}] ({volume.name}) is a hostPath volume")
    if not policy.allow_privileged:
        found += _privileged("spec.securityContext", spec.security_context or {})
        found += _privileged("spec.podSecurityContext", spec.pod_security_context or {})
    return found


def _privileged(where: str, context: dict[str, Any]) -> list[str]:
    found = []
    if context.get("privileged") is True:
        found.append(f"{where}.privileged is true")
    if context.get("allowPrivilegeEscalation") is True:
        found.append(f"{where}.allowPrivilegeEscalation is true")
    if context.get("runAsNonRoot") is False or context.get("runAsUser") == 0:
        found.append(f"{where} runs as root")
    added = set((context.get("capabilities") or {}).get("add") or []) - _ALLOWED_CAPABILITIES
    if added:
        found.append(f"{where}.capabilities.add has {', '.join(sorted(added))}")
    return found


def message(found: list[str]) -> str:
    return (
        "refused by the operator's policy: "
        + "; ".join(found)
        + " (an installation can allow this with --allow-host-path / --allow-privileged)"
    )
