"""The kubelet's rules that tests/image/pods.py re-creates to run the chart's containers."""

from __future__ import annotations

import pytest

from tests.image.pods import PodFacts, container_env, expand, field_value, resource_value

POD = PodFacts("op-1", "ns", "uid-1", "node-a", "sa", {"app": "x"}, {"note": "y"})


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("--node-name=$(NODE_NAME)", "--node-name=kwok-1"),
        ("$$(NODE_NAME)", "$(NODE_NAME)"),  # escaped
        ("$(UNSET) stays", "$(UNSET) stays"),
        ("a$b $( c", "a$b $( c"),
        ("$(NODE_NAME)$(NODE_NAME)", "kwok-1kwok-1"),
    ],
)
def test_expansion_follows_kubernetes(text: str, expanded: str) -> None:
    assert expand(text, {"NODE_NAME": "kwok-1"}) == expanded


def test_env_resolves_the_downward_api_and_earlier_variables() -> None:
    container = {
        "env": [
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "WHERE", "value": "on $(NODE_NAME)"},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {
                "name": "MEM",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
        ],
        "resources": {"limits": {"memory": "512Mi"}},
    }
    env = container_env(container, POD, lambda *_: None)
    assert env == {"NODE_NAME": "node-a", "WHERE": "on node-a", "APP": "x", "MEM": "512"}


def test_an_unknown_source_fails_naming_it() -> None:
    with pytest.raises(AssertionError, match=r"status\.nominatedNodeName"):
        field_value("status.nominatedNodeName", POD)


def test_an_unset_limit_is_the_nodes_allocatable() -> None:
    node = PodFacts("p", "ns", "u", "n", "sa", {}, {}, node_allocatable={"cpu": "8"})
    assert resource_value({"resource": "limits.cpu"}, {}, node) == "8"
