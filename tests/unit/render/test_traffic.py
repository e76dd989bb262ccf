"""Phase D as the default (render/traffic.py): every mesh agent gets its type's retries and
outlier detection, in both modes; the installation and the agent override them field by field,
and only `enabled: false` turns them off."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentfleet.api.config import RenderConfig
from agentfleet.api.models import AgentType, Traffic
from agentfleet.render import istio, traffic
from agentfleet.render.context import RenderContext
from tests.unit.render.test_istio import mesh_agent, objects

OFF = {"enabled": False}


def routes_of(found: dict[tuple[str, str], Any], name: str = "b") -> dict[str, Any]:
    return {r["name"]: r for r in found[("VirtualService", name)]["spec"]["http"]}


@pytest.mark.parametrize("mode", ["sidecar", "ambient"])
def test_a_mesh_agent_without_traffic_settings_gets_retries_and_outlier_detection(
    mode: str,
) -> None:
    found = objects(mesh_agent({"mode": mode}, agent_type="orchestrator"))
    outlier = found[("DestinationRule", "b")]["spec"]["trafficPolicy"]["outlierDetection"]
    assert outlier == {
        "consecutive5xxErrors": 5,
        "interval": "10s",
        "baseEjectionTime": "30s",
        "maxEjectionPercent": 34,  # at most one of the orchestrator's three replicas
    }
    routes = routes_of(found)
    for port in ("http", "grpc"):
        assert routes[port]["retries"] == {"attempts": 3, "retryOn": traffic.SAFE_RETRY_ON}
    for port in ("http-metrics", "http-health"):
        assert "retries" not in routes[port]
    if mode == "ambient":  # applied by the namespace waypoint, never by ztunnel
        assert ("Gateway", "waypoint") in found
        labels = found[("Service", "b")]["metadata"]["labels"]
        assert labels["istio.io/use-waypoint"] == "waypoint"


def test_every_type_has_defaults_and_they_differ_where_the_type_needs_it() -> None:
    assert set(traffic.TYPE_DEFAULTS) == set(AgentType)
    for defaults in traffic.TYPE_DEFAULTS.values():
        assert defaults.retries is not None and defaults.outlier_detection is not None
        assert defaults.retries.retry_on  # always explicit, never Istio's implicit 503 retry
    coding = traffic.TYPE_DEFAULTS[AgentType.CODING].retries
    assert coding is not None and (coding.attempts, coding.retry_on) == (
        1,
        "connect-failure,refused-stream",  # a long GPU task that started is never re-run
    )


def test_the_agents_fields_win_over_the_installations_which_win_over_the_types() -> None:
    installation = {
        "coding": Traffic.model_validate(
            {"retries": {"attempts": 4}, "timeout": "90s", "connectionPool": {"maxRequests": 7}}
        )
    }
    context = RenderContext(RenderConfig(traffic_defaults=installation))
    own = {"mode": "sidecar", "traffic": {"timeout": "10s"}}
    found = objects(mesh_agent(own, agent_type="coding"), context)
    http = routes_of(found)["http"]
    assert http["timeout"] == "10s"  # the agent's
    assert http["retries"] == {"attempts": 4}  # the installation's (a whole field replaced)
    policy = found[("DestinationRule", "b")]["spec"]["trafficPolicy"]
    assert policy["connectionPool"] == {"http": {"http2MaxRequests": 7}}  # the installation's
    assert policy["outlierDetection"]["interval"] == "30s"  # the coding type's
    # Another type is untouched by the coding defaults.
    other = objects(mesh_agent({"mode": "sidecar"}, agent_type="testing"), context)
    assert routes_of(other)["http"]["retries"]["attempts"] == 2


@pytest.mark.parametrize("mode", ["sidecar", "ambient"])
def test_off_only_when_set_so_by_the_agent(mode: str) -> None:
    found = objects(
        mesh_agent({"mode": mode, "traffic": {"retries": OFF, "outlierDetection": OFF}})
    )
    kinds = {kind for kind, _ in found}
    assert not kinds & {"DestinationRule", "VirtualService", "HTTPRoute", "GRPCRoute", "Gateway"}
    # Turning one off keeps the other.
    only_outlier = objects(mesh_agent({"mode": mode, "traffic": {"retries": OFF}}))
    assert ("DestinationRule", "b") in only_outlier
    assert ("VirtualService", "b") not in only_outlier


def test_off_by_the_installation_for_a_type() -> None:
    installation = traffic.load_defaults(
        "coding: {retries: {enabled: false}, outlierDetection: {enabled: false}}\n"
    )
    context = RenderContext(RenderConfig(traffic_defaults=installation))
    coding = objects(mesh_agent({"mode": "sidecar"}, agent_type="coding"), context)
    assert not {k for k, _ in coding} & {"DestinationRule", "VirtualService"}
    # ... which an agent can turn back on.
    back = {"mode": "sidecar", "traffic": {"retries": {"attempts": 2}}}
    assert ("VirtualService", "b") in objects(mesh_agent(back, agent_type="coding"), context)


def test_an_ambient_agent_without_a_waypoint_stays_l4() -> None:
    found = objects(mesh_agent({"mode": "ambient", "waypoint": "none"}))
    assert not {k for k, _ in found} & {"DestinationRule", "VirtualService", "Gateway"}


def test_mode_none_has_no_traffic_objects() -> None:
    assert not {k for k, _ in objects(mesh_agent({"mode": "none"}))} & {
        "DestinationRule",
        "VirtualService",
    }


def test_installation_defaults_are_checked_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="unknown agent type 'coder'"):
        traffic.load_defaults("coder: {retries: {attempts: 2}}")
    with pytest.raises(ValueError, match=r"coding: retries.attempts"):
        traffic.load_defaults("coding: {retries: {attempts: 0}}")
    with pytest.raises(ValueError, match="faultInjection is per agent"):
        traffic.load_defaults("coding: {faultInjection: {abort: {percent: 5}}}")
    with pytest.raises(ValueError, match="expected traffic fields"):
        traffic.load_defaults("coding: 3")
    assert traffic.load_defaults("") == {}


rules = st.one_of(
    st.none(),
    st.just({}),
    st.just(OFF),
    st.fixed_dictionaries({"attempts": st.integers(1, 3)}),
)


@settings(max_examples=200, deadline=None)
@given(
    agent_type=st.sampled_from([t.value for t in AgentType]),
    retries=rules,
    outlier=st.one_of(st.none(), st.just({}), st.just(OFF)),
    timeout=st.sampled_from([None, "5s"]),
    installation_off=st.booleans(),
)
def test_a_peers_raw_spec_and_the_parsed_agent_agree_on_l7_rules(
    agent_type: str,
    retries: dict[str, Any] | None,
    outlier: dict[str, Any] | None,
    timeout: str | None,
    installation_off: bool,
) -> None:
    """The namespace waypoint's users are computed from peers' raw specs: that must say
    exactly what the agent's own (parsed) render decides, or the shared waypoint flaps."""
    raw: dict[str, Any] = {}
    for key, value in (("retries", retries), ("outlierDetection", outlier), ("timeout", timeout)):
        if value is not None:
            raw[key] = value
    installation = (
        {agent_type: Traffic.model_validate({"retries": OFF, "outlierDetection": OFF})}
        if installation_off
        else {}
    )
    parsed = traffic.effective(agent_type, Traffic.model_validate(raw), installation)
    assert traffic.has_rules(raw, agent_type, installation) == (parsed is not None)
    mesh = {"mode": "ambient", "traffic": raw} if raw else {"mode": "ambient"}
    config = RenderConfig(traffic_defaults=installation)
    scope = istio.waypoint_scope(mesh, config, agent_type)
    assert (scope.value == "namespace") == (parsed is not None)
