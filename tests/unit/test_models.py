import pytest
from pydantic import ValidationError

from agentfleet.api.models import AgentSpec, AgentType, GPUSharing, GPUVendor
from tests.unit.conftest import agent_from, example_bodies


def test_minimal_spec_gets_documented_defaults() -> None:
    spec = AgentSpec.model_validate({"agentType": "coding", "image": "example.com/a:1"})
    assert spec.replicas == 1
    assert spec.gpu is None and spec.autoscaling is None and spec.mesh is None


def test_gpu_defaults() -> None:
    spec = AgentSpec.model_validate({"agentType": "coding", "image": "i", "gpu": {"vram": "24Gi"}})
    assert spec.gpu is not None
    assert (spec.gpu.count, spec.gpu.vendor, spec.gpu.sharing) == (
        1,
        GPUVendor.NVIDIA,
        GPUSharing.EXCLUSIVE,
    )


ROLLOUT_PLAN_TYPES = {
    "orchestrator",
    "coding",
    "testing",
    "security",
    "compliance",
    "documentation",
    "discovery",
}


def test_every_agent_type_of_the_rollout_plan_exists() -> None:
    assert {t.value for t in AgentType} >= ROLLOUT_PLAN_TYPES


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ({"agentType": "poet", "image": "i"}, "agentType"),
        ({"agentType": "coding"}, "image"),
        ({"agentType": "coding", "image": "i", "replicas": -1}, "replicas"),
        ({"agentType": "coding", "image": "i", "gpu": {"vram": "24GB"}}, "vram"),
        ({"agentType": "coding", "image": "i", "resources": {"limits": {"cpu": "lots"}}}, "cpu"),
        ({"agentType": "coding", "image": "i", "colour": "blue"}, "colour"),
    ],
)
def test_bad_specs_are_refused_with_the_field_named(spec: dict[str, object], where: str) -> None:
    with pytest.raises(ValidationError) as error:
        AgentSpec.model_validate(spec)
    assert where in str(error.value)


def test_quantities_accept_integers() -> None:
    spec = AgentSpec.model_validate(
        {"agentType": "coding", "image": "i", "resources": {"requests": {"cpu": 2}}}
    )
    assert spec.resources is not None and spec.resources.requests == {"cpu": "2"}


def test_examples_parse_and_cover_all_seven_types() -> None:
    agents = [
        agent_from(body["spec"], name=body["metadata"]["name"])
        for body in example_bodies()
        if body["metadata"].get("namespace") == "ai-agents"
    ]
    assert {a.spec.agent_type.value for a in agents} == ROLLOUT_PLAN_TYPES
