from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agentfleet.api.models import AIAgent

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "manifests" / "examples"
GOLDEN = Path(__file__).parent / "golden"


def agent_from(
    spec: dict[str, Any], name: str = "demo", namespace: str = "team-a", generation: int = 1
) -> AIAgent:
    return AIAgent.from_body(
        {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": "0000-uid",
                "generation": generation,
            },
            "spec": spec,
        }
    )


@pytest.fixture
def minimal_agent() -> AIAgent:
    return agent_from({"agentType": "coding", "image": "example.com/coding:1"})


def example_bodies() -> list[dict[str, Any]]:
    """Every AIAgent in manifests/examples plus the golden-only edge cases."""
    bodies = []
    for path in sorted([*EXAMPLES.glob("*.yaml"), *(GOLDEN / "inputs").glob("*.yaml")]):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "AIAgent":
                bodies.append(doc)
    return bodies
