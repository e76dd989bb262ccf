"""The committed CRD is generated from the models, and is a valid structural schema."""

from pathlib import Path
from typing import Any

import yaml

from agentfleet.api import constants as c
from agentfleet.api import crd

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "crds" / f"{c.CRD_NAME}.yaml"


def test_committed_crd_is_up_to_date() -> None:
    assert COMMITTED.read_text() == crd.render_yaml(), (
        "crds/ is stale: run `make crds` (agentfleet crd -o crds/aiagents.agentfleet.io.yaml)"
    )


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found += _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _walk(value, f"{path}[{i}]")
    return found


def schema() -> dict[str, Any]:
    return crd.custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_schema_is_structural() -> None:
    for path, node in _walk(schema()):
        assert "$ref" not in node and "title" not in node, path
        assert node.get("type") != "null", path
        assert "anyOf" not in node or node.get("x-kubernetes-int-or-string"), path
        if "properties" in node:
            assert "additionalProperties" not in node, path


def _schema_nodes(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every schema (not rule, not enum value) reachable from `node`."""
    found = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        found += _schema_nodes(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        found += _schema_nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _schema_nodes(node["additionalProperties"], f"{path}{{}}")
    return found


def test_schema_types_every_node() -> None:
    untyped = [
        path
        for path, node in _schema_nodes(schema())
        if "type" not in node and not node.get("x-kubernetes-int-or-string")
    ]
    assert untyped == []


def test_cel_rules_are_present() -> None:
    rules = {r["rule"] for _, n in _walk(schema()) for r in n.get("x-kubernetes-validations", [])}
    assert any("self.minReplicas <= self.maxReplicas" in r for r in rules)
    assert "!has(self.vram) || self.count >= 1" in rules
    assert crd.NAME_RULE["rule"] in rules


def test_names_subresources_and_columns() -> None:
    spec = crd.custom_resource_definition()["spec"]
    assert spec["names"]["shortNames"] == ["aia"]
    assert "all" in spec["names"]["categories"]
    version = spec["versions"][0]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    names = [col["name"] for col in version["additionalPrinterColumns"] if "priority" not in col]
    assert names == ["Type", "Ready", "Replicas", "Available", "Node/GPU", "Age"]


def test_env_is_a_list_map_so_duplicate_names_are_refused() -> None:
    env = schema()["properties"]["spec"]["properties"]["env"]
    assert env["x-kubernetes-list-type"] == "map"
    assert env["x-kubernetes-list-map-keys"] == ["name"]


def test_committed_file_is_yaml_of_the_same_object() -> None:
    body = COMMITTED.read_text()
    assert yaml.safe_load(body) == crd.custom_resource_definition()


def test_exclusive_bounds_are_written_the_openapi_v3_way() -> None:
    from pydantic import BaseModel, Field

    class Bounded(BaseModel):
        percent: float = Field(gt=0, lt=100)

    schema = crd.structural_schema(Bounded)["properties"]["percent"]
    assert schema["minimum"] == 0 and schema["exclusiveMinimum"] is True
    assert schema["maximum"] == 100 and schema["exclusiveMaximum"] is True
