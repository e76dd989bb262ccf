"""Metadata every child of an AIAgent carries: names, labels, the controller ownerReference."""

from __future__ import annotations

from typing import Any

from agentfleet.api import constants as c
from agentfleet.api.models import AIAgent


def selector_labels(agent: AIAgent) -> dict[str, str]:
    """Immutable Deployment selector and Service selector: the agent's identity only."""
    return {c.LABEL_NAME: c.APP_NAME, c.LABEL_INSTANCE: agent.metadata.name}


def labels(agent: AIAgent) -> dict[str, str]:
    """Recommended labels. Never copied from the parent, so GitOps tracking labels that
    Argo CD or Flux put on the AIAgent do not make its children look like theirs."""
    return {
        **selector_labels(agent),
        c.LABEL_COMPONENT: agent.spec.agent_type.value,
        c.LABEL_PART_OF: c.PART_OF,
        c.LABEL_MANAGED_BY: c.MANAGED_BY,
        c.LABEL_AGENT_TYPE: agent.spec.agent_type.value,
    }


def owner_reference(agent: AIAgent) -> dict[str, Any]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "name": agent.metadata.name,
        "uid": agent.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(agent: AIAgent, name: str | None = None) -> dict[str, Any]:
    return {
        "name": name or agent.metadata.name,
        "namespace": agent.metadata.namespace,
        "labels": labels(agent),
        "ownerReferences": [owner_reference(agent)],
    }


def service_account_name(agent: AIAgent) -> str:
    return agent.spec.service_account_name or agent.metadata.name


def own_identity(agent: AIAgent) -> bool:
    """Does the agent run as the ServiceAccount the operator creates for it (named after the
    agent), rather than one it brings? Naming its own name is the same as naming none."""
    chosen = agent.spec.service_account_name
    return not chosen or chosen == agent.metadata.name


def label_selector(agent: AIAgent) -> str:
    """The selector as a string, for the scale subresource's labelSelectorPath."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(agent).items()))
