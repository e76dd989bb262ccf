"""The chart's PrometheusRule and Grafana dashboard judged by Prometheus' own promtool (pinned,
built from the Go module proxy and cached like the control plane's binaries):

- `promtool check rules` on the rules the chart renders (default values and all options);
- `promtool test rules`: each alert fires on the series the operator exports, with the labels and
  annotations it would carry, and stays silent on a healthy operator and on the other alerts'
  troubles;
- every dashboard panel's query parses as PromQL (as a recording rule `promtool check rules`
  reads), after Grafana's variables are substituted.
"""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from agentfleet.telemetry import metrics
from tests.unit.test_chart import ALL_OPTIONS, dashboard, one, render

# Labels Prometheus adds to every scraped series (ServiceMonitor or annotation scraping).
TARGET = {
    "namespace": "agentfleet-system",
    "job": "agentfleet-operator-metrics",
    "pod": "agentfleet-operator-7d9f8b6c5-x2x4q",
    "instance": "10.0.0.5:8080",
}


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    from agentfleet_dev import build

    return build.ensure(build.HELM, lambda m: print(m, file=sys.stderr)) / "bin" / "helm"


@pytest.fixture(scope="session")
def promtool() -> Path:
    from agentfleet_dev import build

    return build.ensure(build.PROMTOOL, lambda m: print(m, file=sys.stderr)) / "bin" / "promtool"


def run(promtool: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def rule_groups(helm: Path, *args: str) -> dict[str, Any]:
    rule = one(
        render(helm, "--set", "metrics.prometheusRule.enabled=true", *args), "PrometheusRule"
    )
    return {"groups": rule["spec"]["groups"]}


@pytest.mark.parametrize("values", ["defaults", "all-options"])
def test_rules_pass_promtool_check_rules(
    helm_bin: Path, promtool: Path, tmp_path: Path, values: str
) -> None:
    args = ("-f", str(ALL_OPTIONS)) if values == "all-options" else ()
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_groups(helm_bin, *args)))
    checked = run(promtool, "check", "rules", "rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert re.search(r"SUCCESS: \d+ rules found", checked.stdout), checked.stdout


# --- promtool test rules -----------------------------------------------------------------------


def series(metric: str, values: str, **labels: str) -> dict[str, str]:
    inner = ", ".join(f'{k}="{v}"' for k, v in {**labels, **TARGET}.items())
    return {"series": f"{metric}{{{inner}}}", "values": values}


# A healthy operator for 40 minutes: scraped, reconciling without errors, a short queue, no
# agent Stalled. Each trouble below replaces one of these series.
HEALTHY = {
    "up": series("up", "1x40"),
    "reconciles_ok": series(
        "controller_runtime_reconcile_total",
        "0+30x40",
        controller=metrics.CONTROLLER,
        result="success",
    ),
    "reconciles_failed": series(
        "controller_runtime_reconcile_total",
        "0x40",
        controller=metrics.CONTROLLER,
        result="error",
    ),
    "queue": series("workqueue_depth", "3x40", name=metrics.CONTROLLER),
    "stalled": series("agentfleet_agents", "0x40", condition="Stalled", status="True"),
    "ready": series("agentfleet_agents", "5x40", condition="Ready", status="True"),
}
EVAL = "35m"  # every alert's `for` has passed by then (stalledFor is 15m by default)


# alert -> (the series that goes wrong, its values, the labels the alert keeps, $value)
TROUBLES: dict[str, tuple[str, str, dict[str, str], str]] = {
    "AgentfleetOperatorDown": ("up", "0x40", TARGET, "0"),
    # 10 of 40 reconciles a minute fail: 25% > 10%.
    "AgentfleetReconcileErrors": ("reconciles_failed", "0+10x40", {}, "0.25"),
    "AgentfleetWorkQueueDepthHigh": ("queue", "150x40", {}, "150"),
    "AgentfleetAgentsStalled": ("stalled", "2x40", {}, "2"),
}


def expanded(template: str, labels: dict[str, str], value: str) -> str:
    """The few template actions our annotations use, as Prometheus expands them."""

    def action(match: re.Match[str]) -> str:
        body = match.group(1).strip()
        if body.startswith("$labels."):
            return labels.get(body.removeprefix("$labels."), "")
        if body == "$value":
            return f"{float(value):g}"
        if re.fullmatch(r"\$value\s*\|\s*humanizePercentage", body):
            return f"{float(value) * 100:.4g}%"
        raise AssertionError(f"template action {{{{ {body} }}}}: teach expanded() about it")

    return re.sub(r"\{\{(.*?)\}\}", action, template)


def expected_alert(rule: dict[str, Any], kept: dict[str, str], value: str) -> dict[str, Any]:
    labels = {**kept, **rule.get("labels", {})}
    annotations = {k: expanded(v, labels, value) for k, v in rule.get("annotations", {}).items()}
    return {"exp_labels": labels, "exp_annotations": annotations}


def rules_test(groups: dict[str, Any]) -> dict[str, Any]:
    alerts = {r["alert"]: r for g in groups["groups"] for r in g["rules"] if "alert" in r}
    assert set(alerts) == set(TROUBLES), "every alert needs a trouble in TROUBLES that fires it"
    tests = [
        {
            "name": "a healthy operator fires nothing",
            "interval": "1m",
            "input_series": list(HEALTHY.values()),
            "alert_rule_test": [
                {"eval_time": EVAL, "alertname": name, "exp_alerts": []} for name in alerts
            ],
        }
    ]
    for name, (key, values, kept, value) in TROUBLES.items():
        inputs = {**HEALTHY, key: {**HEALTHY[key], "values": values}}
        tests.append(
            {
                "name": f"{name} fires, alone",
                "interval": "1m",
                "input_series": list(inputs.values()),
                "alert_rule_test": [
                    {
                        "eval_time": EVAL,
                        "alertname": other,
                        "exp_alerts": [expected_alert(rule, kept, value)] if other == name else [],
                    }
                    for other, rule in alerts.items()
                ],
            }
        )
    return {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}


def test_each_alert_fires_on_the_operators_series_and_only_then(
    helm_bin: Path, promtool: Path, tmp_path: Path
) -> None:
    groups = rule_groups(helm_bin)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(groups))
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(rules_test(groups), width=1000))
    tested = run(promtool, "test", "rules", "test.yaml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout, tested.stdout


@cache
def exported_label_names() -> dict[str, set[str]]:
    """Sample name -> label names, from the operator's own metrics registry."""
    names: dict[str, set[str]] = {"up": set()}
    for value in vars(metrics).values():
        labelnames = getattr(value, "_labelnames", None)
        family = getattr(value, "_name", None)
        if labelnames is None or family is None:
            continue
        kind = getattr(value, "_type", "")
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
        for suffix in suffixes.get(kind, [""]):
            names[family + suffix] = set(labelnames)
    for family in REGISTRY.collect():
        names.setdefault(family.name, set())
    names["agentfleet_agents"] = {"condition", "status"}
    assert metrics.AGENTS._family().name == "agentfleet_agents"
    return names


def test_the_test_series_are_series_the_operator_exports() -> None:
    """Alerts proven on made-up metric names would prove nothing."""
    exported = exported_label_names()
    for entry in HEALTHY.values():
        name, _, inner = entry["series"].partition("{")
        keys = set(re.findall(r'(\w+)="', inner)) - set(TARGET)
        assert name in exported, name
        assert keys == exported[name], (name, keys, exported[name])


# --- the dashboard's queries -------------------------------------------------------------------

GRAFANA_INTERVALS = ("$__rate_interval", "$__interval", "$__range", "$interval")


def promql(expr: str, variables: list[str]) -> str:
    """A panel's query as Prometheus receives it from Grafana."""
    for interval in GRAFANA_INTERVALS:
        expr = expr.replace(interval, "5m")
    for name in variables:
        expr = expr.replace(f"${{{name}}}", "agentfleet-system").replace(
            f"${name}", "agentfleet-system"
        )
    assert "$" not in expr, f"a Grafana variable the test does not know: {expr}"
    return expr


def test_every_dashboard_panel_query_parses_as_promql(promtool: Path, tmp_path: Path) -> None:
    board = dashboard()
    variables = [v["name"] for v in board["templating"]["list"]]
    rules = [
        {"record": f"dashboard:panel_{panel['id']}:{index}", "expr": promql(t["expr"], variables)}
        for panel in board["panels"]
        for index, t in enumerate(panel.get("targets", []))
    ]
    assert rules, "no panel queries"
    (tmp_path / "dashboard.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    checked = run(promtool, "check", "rules", "dashboard.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout, checked.stdout
