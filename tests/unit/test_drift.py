import copy

from agentfleet.api.constants import ANNOTATION_APPLIED_HASH
from agentfleet.api.models import AIAgent
from agentfleet.controllers import drift
from agentfleet.render import deployment
from agentfleet.render.context import RenderContext

CTX = RenderContext()


def desired(agent: AIAgent) -> dict[str, object]:
    return drift.stamp(deployment.render(agent, CTX)[0])


def as_stored(obj: dict[str, object]) -> dict[str, object]:
    """What the API server returns: our fields plus defaults and server-side metadata."""
    stored = copy.deepcopy(obj)
    stored["metadata"].update({"uid": "x", "resourceVersion": "7", "generation": 1})  # type: ignore[union-attr]
    spec = stored["spec"]
    spec["progressDeadlineSeconds"] = 600  # type: ignore[index]
    spec["template"]["spec"]["dnsPolicy"] = "ClusterFirst"  # type: ignore[index]
    stored["status"] = {"replicas": 1}
    return stored


def test_unchanged_object_needs_no_write(minimal_agent: AIAgent) -> None:
    """Both checks the reconciler makes pass: the same applied hash, and no drift."""
    want = desired(minimal_agent)
    stored = as_stored(want)
    assert drift.applied_hash_of(stored) == drift.applied_hash_of(want) is not None
    assert drift.contains(stored, want)


def test_edited_field_is_drift(minimal_agent: AIAgent) -> None:
    want = desired(minimal_agent)
    stored = as_stored(want)
    stored["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:1"  # type: ignore[index]
    assert not drift.contains(stored, want)


def test_removed_port_is_drift(minimal_agent: AIAgent) -> None:
    want = desired(minimal_agent)
    stored = as_stored(want)
    stored["spec"]["template"]["spec"]["containers"][0]["ports"].pop()  # type: ignore[index]
    assert not drift.contains(stored, want)


def test_changed_desired_state_is_caught_by_the_hash(minimal_agent: AIAgent) -> None:
    old = desired(minimal_agent)
    stored = as_stored(old)
    stored["spec"]["template"]["spec"]["nodeSelector"] = {"a": "b"}  # type: ignore[index]
    # The new desired object has no nodeSelector: a subset test alone would pass.
    assert drift.contains(stored, old)
    stored["metadata"]["annotations"][ANNOTATION_APPLIED_HASH] = "from-an-older-spec"  # type: ignore[index]
    assert drift.applied_hash_of(stored) != drift.applied_hash_of(old)


def test_quantities_compare_by_value() -> None:
    assert drift.contains(
        {"resources": {"requests": {"cpu": "500m"}}}, {"resources": {"requests": {"cpu": "0.5"}}}
    )
    assert not drift.contains(
        {"resources": {"requests": {"cpu": "500m"}}}, {"resources": {"requests": {"cpu": "1"}}}
    )
    assert not drift.contains({"env": [{"value": "500m"}]}, {"env": [{"value": "0.5"}]})


def test_hash_ignores_key_order() -> None:
    assert drift.applied_hash({"a": 1, "b": 2}) == drift.applied_hash({"b": 2, "a": 1})
