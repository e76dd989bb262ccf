"""The Argo CD health check for AIAgent (argocd/resource_customizations/agentfleet.io/AIAgent),
run in a real Lua 5.1 (Argo CD's gopher-lua dialect) through lupa: against every fixture listed in
health_test.yaml, exactly as Argo CD's own `go test ./util/lua/` does, and against statuses that
the operator's status.py computes, so the check and the operator cannot drift apart."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import jsonschema_rs
import pytest
import yaml
from lupa import lua51  # type: ignore[import-untyped]

from agentfleet.api import constants as c
from agentfleet.controllers.status import Problem, desired_status, invalid_spec_status
from tests.unit.conftest import ROOT, agent_from

CHECK = ROOT / "argocd" / "resource_customizations" / c.GROUP / c.KIND
ARGO_HEALTH = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
T0 = "2026-01-05T09:00:00Z"


def health(obj: dict[str, Any]) -> dict[str, str | None]:
    """Argo CD's contract: the object is the global `obj`; the script returns {status, message}.
    Only the libraries Argo CD opens are there (no os, io, require)."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True, register_eval=False)
    for unsafe in ("os", "io", "debug", "require", "dofile", "loadfile", "package", "python"):
        lua.globals()[unsafe] = None
    lua.globals().obj = lua.table_from(obj, recursive=True)
    script = lua.eval("function() " + (CHECK / "health.lua").read_text() + "\nend")
    result = script()
    return {"status": result["status"], "message": result["message"]}


def health_tests() -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = yaml.safe_load((CHECK / "health_test.yaml").read_text())["tests"]
    return tests


@pytest.mark.parametrize("case", health_tests(), ids=lambda case: case["inputPath"])
def test_fixture_gets_its_expected_health(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((CHECK / case["inputPath"]).read_text())
    expected = {"status": case["healthStatus"]["status"], "message": None}
    expected["message"] = case["healthStatus"].get("message")
    assert health(obj) == expected


def test_every_testdata_file_is_listed_and_every_listed_file_exists() -> None:
    listed = {case["inputPath"] for case in health_tests()}
    on_disk = {f"testdata/{path.name}" for path in (CHECK / "testdata").glob("*.yaml")}
    assert listed == on_disk


def test_health_test_yaml_has_argo_cds_shape() -> None:
    for case in health_tests():
        assert set(case) == {"healthStatus", "inputPath"}, case
        assert set(case["healthStatus"]) <= {"status", "message"}, case
        assert case["healthStatus"]["status"] in ARGO_HEALTH, case


def test_fixtures_cover_every_health_the_check_can_return() -> None:
    covered = {case["healthStatus"]["status"] for case in health_tests()}
    assert covered == {"Healthy", "Progressing", "Degraded", "Suspended"}


# --- the check against what the operator actually writes -------------------------------------


def body(spec: dict[str, Any], generation: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": "demo", "namespace": "team-a", "uid": "u", "generation": generation},
        "spec": {"agentType": "coding", "image": "example.com/coding:1", **spec},
        **extra,
    }


def deployment(
    replicas: int, available: int, conditions: list[dict[str, str]] | None = None
) -> Any:
    return {
        "metadata": {"name": "demo", "generation": 1},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": available,
            "availableReplicas": available,
            "conditions": conditions or [],
        },
    }


def with_status(
    agent_body: dict[str, Any], dep: Any, problem: Problem | None = None
) -> dict[str, Any]:
    agent = agent_from(agent_body["spec"], generation=agent_body["metadata"]["generation"])
    status = desired_status(agent, dep, problem, None, "cluster.local", T0)
    return {**agent_body, "status": status}


DEADLINE = [
    {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": "ReplicaSet demo-1 has timed out progressing.",
    }
]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (with_status(body({"replicas": 3}), deployment(3, 3)), "Healthy"),
        (with_status(body({"replicas": 3}), deployment(3, 1)), "Progressing"),
        (with_status(body({"replicas": 3}), None), "Progressing"),
        (with_status(body({"replicas": 3}), deployment(3, 1, DEADLINE)), "Degraded"),
        (
            with_status(body({"replicas": 3}), None, Problem("ApplyFailed", "refused: bad mount")),
            "Degraded",
        ),
        (with_status(body({"replicas": 0}), deployment(0, 0)), "Suspended"),
        (
            with_status(
                body({"replicas": 0, "autoscaling": {"minReplicas": 0, "maxReplicas": 4}}),
                deployment(0, 0),
            ),
            "Healthy",
        ),
        (
            with_status(body({"replicas": 0, "autoscaling": {"enabled": False}}), deployment(0, 0)),
            "Suspended",
        ),
        (body({"replicas": 3}), "Progressing"),
    ],
    ids=[
        "available",
        "rolling-out",
        "no-deployment-yet",
        "progress-deadline",
        "apply-failed",
        "scaled-to-zero",
        "autoscaled-to-zero",
        "autoscaling-disabled-at-zero",
        "no-status",
    ],
)
def test_status_written_by_the_operator_maps_to_argo_health(
    obj: dict[str, Any], expected: str
) -> None:
    assert health(obj)["status"] == expected


def test_degraded_message_is_the_stalled_conditions() -> None:
    problem = Problem("ApplyFailed", "Deployment demo was rejected by the API server (422): x")
    assert health(with_status(body({}), None, problem)) == {
        "status": "Degraded",
        "message": problem.message,
    }


def test_invalid_spec_status_is_degraded() -> None:
    status = invalid_spec_status(2, "spec.replicas: Input should be >= 0", None, T0)
    result = health(body({}, generation=2, status=status))
    assert result == {"status": "Degraded", "message": "spec.replicas: Input should be >= 0"}


def test_status_of_an_older_generation_is_progressing_even_if_ready() -> None:
    ready = with_status(body({"replicas": 3}), deployment(3, 3))
    assert health(ready)["status"] == "Healthy"
    ready["metadata"] = {**ready["metadata"], "generation": 2}
    assert health(ready) == {
        "status": "Progressing",
        "message": "Waiting for the agentfleet operator to observe generation 2",
    }


# --- argocd-cm, Application, ApplicationSet -----------------------------------------------------


def argocd_cm() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "argocd" / "argocd-cm.yaml").read_text())
    return loaded


def test_argocd_cm_installs_health_lua_verbatim() -> None:
    data = argocd_cm()["data"]
    key = f"resource.customizations.health.{c.GROUP}_{c.KIND}"
    assert data[key] == (CHECK / "health.lua").read_text(), "run `make manifests`"


IGNORE_KEY = f"resource.customizations.ignoreDifferences.{c.GROUP}_{c.KIND}"


def replicas_expression() -> str:
    rule = yaml.safe_load(argocd_cm()["data"][IGNORE_KEY])
    (expression,) = rule["jqPathExpressions"]
    assert isinstance(expression, str)
    return expression


def fleet_applicationsets() -> list[dict[str, Any]]:
    """The ApplicationSets that deploy AIAgents: per team, and per team on every cluster."""
    team = yaml.safe_load((ROOT / "argocd" / "applicationset.yaml").read_text())
    clusters = list(
        yaml.safe_load_all((ROOT / "argocd" / "applicationset-clusters.yaml").read_text())
    )
    return [team, *(a for a in clusters if a["metadata"]["name"] == "agentfleet-teams-clusters")]


@pytest.mark.parametrize("index", [0, 1], ids=["teams", "teams-on-every-cluster"])
def test_applicationset_ignores_the_same_field_as_argocd_cm(index: int) -> None:
    appset = fleet_applicationsets()[index]
    (ignore,) = appset["spec"]["template"]["spec"]["ignoreDifferences"]
    assert (ignore["group"], ignore["kind"]) == (c.GROUP, c.KIND)
    assert ignore["jqPathExpressions"] == [replicas_expression()]
    assert (
        "RespectIgnoreDifferences=true"
        in appset["spec"]["template"]["spec"]["syncPolicy"]["syncOptions"]
    )


@pytest.mark.parametrize(
    ("autoscaling", "ignored"),
    [
        ({"enabled": True, "minReplicas": 1, "maxReplicas": 5}, True),
        ({"minReplicas": 1, "maxReplicas": 5}, True),  # enabled defaults to true in the CRD
        ({"enabled": False}, False),
        (None, False),
    ],
)
def test_replicas_are_ignored_only_under_autoscaling(
    autoscaling: dict[str, Any] | None, ignored: bool
) -> None:
    """Argo CD compiles each expression as `del(<expression>)` (gojq); jq has the same semantics."""
    jq = shutil.which("jq")
    if jq is None:
        pytest.skip("jq is not installed")
    spec: dict[str, Any] = {"agentType": "coding", "image": "x", "replicas": 4}
    if autoscaling is not None:
        spec["autoscaling"] = autoscaling
    normalized = subprocess.run(
        [jq, "-c", f"del({replicas_expression()})"],
        input=json.dumps(body(spec)),
        capture_output=True,
        text=True,
        check=True,
    )
    kept = json.loads(normalized.stdout)
    assert ("replicas" not in kept["spec"]) == ignored
    assert {k: v for k, v in kept["spec"].items() if k != "replicas"} == {
        k: v for k, v in spec.items() if k != "replicas"
    }


def merged(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of user values over the chart's values.yaml."""
    result = dict(defaults)
    for key, value in overrides.items():
        base = result.get(key)
        result[key] = (
            merged(base, value) if isinstance(base, dict) and isinstance(value, dict) else value
        )
    return result


def test_application_points_at_the_chart_with_valid_values() -> None:
    app = yaml.safe_load((ROOT / "argocd" / "application.yaml").read_text())
    source = app["spec"]["source"]
    chart = ROOT / source["path"]
    assert (chart / "Chart.yaml").is_file()
    schema = json.loads((chart / "values.schema.json").read_text())
    values = merged(
        yaml.safe_load((chart / "values.yaml").read_text()), source["helm"]["valuesObject"]
    )
    errors = [e.message for e in jsonschema_rs.Draft7Validator(schema).iter_errors(values)]
    assert errors == []
    assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]


def test_one_fleet_goes_to_every_cluster_the_label_selects() -> None:
    """applicationset-clusters.yaml: the operator and the teams' agents on every cluster
    Argo CD knows with agentfleet.io/fleet=enabled (Argo CD's cluster generator)."""
    operator, teams = yaml.safe_load_all(
        (ROOT / "argocd" / "applicationset-clusters.yaml").read_text()
    )
    selector = {"matchLabels": {"agentfleet.io/fleet": "enabled"}}
    assert operator["spec"]["generators"] == [{"clusters": {"selector": selector}}]
    (matrix,) = teams["spec"]["generators"]
    clusters, git = matrix["matrix"]["generators"]
    assert clusters == {"clusters": {"selector": selector}}
    assert git["git"]["directories"] == [{"path": "teams/*"}]
    for appset in (operator, teams):
        template = appset["spec"]["template"]
        assert template["spec"]["destination"]["server"] == "{{.server}}"
        assert "{{.name}}" in template["metadata"]["name"]  # one Application per cluster
    chart = operator["spec"]["template"]["spec"]["source"]
    assert chart["path"] == "charts/agentfleet" and (ROOT / chart["path"] / "Chart.yaml").exists()
