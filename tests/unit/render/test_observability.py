"""Tracing (render/tracing.py), multi-cluster export (render/multicluster.py) and proxyless
gRPC (render/istio.py): what the agent's pods, Service and mesh objects get."""

from __future__ import annotations

from typing import Any

import pytest

from agentfleet.api import constants as c
from agentfleet.api.config import RenderConfig
from agentfleet.render import multicluster, tracing
from agentfleet.render.context import RenderContext
from tests.unit.conftest import agent_from
from tests.unit.render.test_istio import objects

NAMESPACE = "team-a"


def agent(name: str = "b", image: str = "example.com/coding:1.2.0", **spec: Any) -> Any:
    return agent_from({"agentType": "coding", "image": image, **spec}, name=name)


def env_of(found: dict[tuple[str, str], Any], name: str = "b") -> dict[str, Any]:
    container = found[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0]
    return {var["name"]: var.get("value", var.get("valueFrom")) for var in container["env"]}


def pod_template(found: dict[tuple[str, str], Any], name: str = "b") -> dict[str, Any]:
    template: dict[str, Any] = found[("Deployment", name)]["spec"]["template"]
    return template


# --- tracing ------------------------------------------------------------------------------


def test_a_traced_agent_gets_the_opentelemetry_environment() -> None:
    tracing_spec = {"samplingPercent": 10, "endpoint": "http://otel.obs:4317"}
    env = env_of(objects(agent(observability={"tracing": tracing_spec})))
    assert env["OTEL_SERVICE_NAME"] == "b"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel.obs:4317"
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
    attributes = dict(pair.split("=", 1) for pair in env["OTEL_RESOURCE_ATTRIBUTES"].split(","))
    assert attributes == {
        "k8s.namespace.name": NAMESPACE,
        "k8s.deployment.name": "b",
        "k8s.pod.name": "$(AGENTFLEET_POD_NAME)",
        "service.version": "1.2.0",
        "agentfleet.agent.type": "coding",
    }
    # $(AGENTFLEET_POD_NAME) is expanded by the kubelet only from a variable defined before.
    names = list(env)
    assert names.index("AGENTFLEET_POD_NAME") < names.index("OTEL_RESOURCE_ATTRIBUTES")


def test_tracing_follows_the_installation_unless_the_agent_says_otherwise() -> None:
    assert "OTEL_SERVICE_NAME" not in env_of(objects(agent()))  # off: no endpoint anywhere
    config = RenderConfig(
        agent_tracing_endpoint="http://collector:4317", agent_tracing_sampling_percent=2.5
    )
    env = env_of(objects(agent(), RenderContext(config)))
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector:4317"
    assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.025"
    off = agent(observability={"tracing": {"enabled": False}})
    assert "OTEL_SERVICE_NAME" not in env_of(objects(off, RenderContext(config)))
    own = agent(observability={"tracing": {"samplingPercent": 50}})
    assert env_of(objects(own, RenderContext(config)))["OTEL_TRACES_SAMPLER_ARG"] == "0.5"


def test_the_agents_own_env_wins_over_the_opentelemetry_defaults() -> None:
    spec = {
        "observability": {"tracing": {}},
        "env": [{"name": "OTEL_SERVICE_NAME", "value": "custom"}],
    }
    assert env_of(objects(agent(**spec)))["OTEL_SERVICE_NAME"] == "custom"


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("registry:5000/team/agent:2.1", "2.1"),
        ("registry:5000/team/agent", "latest"),
        ("agent@sha256:abcd", "sha256:abcd"),
        ("agent:1.0@sha256:abcd", "sha256:abcd"),
    ],
)
def test_the_version_is_the_images_tag_or_digest(image: str, version: str) -> None:
    assert tracing.image_version(image) == version


def test_a_sidecar_agents_proxy_traces_at_the_same_rate() -> None:
    spec = {"mesh": {"mode": "sidecar"}, "observability": {"tracing": {"samplingPercent": 10}}}
    found = objects(agent(**spec))
    telemetry = found[("Telemetry", "b")]
    assert telemetry["apiVersion"] == "telemetry.istio.io/v1"
    assert telemetry["spec"] == {
        "selector": {"matchLabels": {c.LABEL_NAME: c.APP_NAME, c.LABEL_INSTANCE: "b"}},
        "tracing": [{"randomSamplingPercentage": 10.0}],  # the mesh's default provider
    }
    named = RenderContext(RenderConfig(mesh_tracing_provider="otel-tracing"))
    rule = objects(agent(**spec), named)[("Telemetry", "b")]["spec"]["tracing"][0]
    assert rule["providers"] == [{"name": "otel-tracing"}]


def test_an_ambient_agents_telemetry_is_applied_by_its_waypoint_only() -> None:
    traced = {"observability": {"tracing": {"samplingPercent": 5}}}
    found = objects(agent(mesh={"mode": "ambient"}, **traced))
    assert found[("Telemetry", "b")]["spec"]["targetRefs"] == [
        {"group": "", "kind": "Service", "name": "b"}
    ]
    l4 = objects(agent(mesh={"mode": "ambient", "waypoint": "none"}, **traced))
    assert ("Telemetry", "b") not in l4  # ztunnel makes no spans
    assert "OTEL_SERVICE_NAME" in env_of(l4)  # the agent itself still traces
    assert ("Telemetry", "b") not in objects(agent(**traced))  # no mesh, no Telemetry


# --- multi-cluster ------------------------------------------------------------------------


def test_an_exported_agent_gets_a_service_export_of_its_service() -> None:
    found = objects(agent(multicluster={"export": True}))
    export = found[("ServiceExport", "b")]
    assert export["apiVersion"] == "multicluster.x-k8s.io/v1alpha1"
    assert export["metadata"]["name"] == found[("Service", "b")]["metadata"]["name"]
    assert export["metadata"]["namespace"] == NAMESPACE
    assert export["metadata"]["ownerReferences"][0]["controller"] is True
    assert ("ServiceExport", "b") not in objects(agent(multicluster={"export": False}))
    assert ("ServiceExport", "b") not in objects(agent())


def test_an_exported_ambient_agent_is_global_with_its_own_global_waypoint() -> None:
    found = objects(agent(mesh={"mode": "ambient"}, multicluster={"export": True}))
    labels = found[("Service", "b")]["metadata"]["labels"]
    assert labels[c.LABEL_ISTIO_GLOBAL] == "true"
    assert labels[c.LABEL_ISTIO_USE_WAYPOINT] == "b-waypoint"  # its own, not the namespace's
    waypoint = found[("Gateway", "b-waypoint")]
    assert waypoint["spec"]["infrastructure"]["labels"][c.LABEL_ISTIO_GLOBAL] == "true"
    # Sidecar mode: Istio discovers other clusters' Services itself (or reads ServiceExports
    # with MCS discovery on); nothing but the ServiceExport.
    sidecar = objects(agent(mesh={"mode": "sidecar"}, multicluster={"export": True}))
    assert c.LABEL_ISTIO_GLOBAL not in sidecar[("Service", "b")]["metadata"]["labels"]
    # Not exported: never global, and the namespace waypoint is shared as before.
    local = objects(agent(mesh={"mode": "ambient"}))
    assert c.LABEL_ISTIO_GLOBAL not in local[("Service", "b")]["metadata"]["labels"]
    assert (
        c.LABEL_ISTIO_GLOBAL
        not in local[("Gateway", "waypoint")]["spec"]["infrastructure"]["labels"]
    )


def test_the_export_health_says_what_the_mcs_implementation_said() -> None:
    def export(*conditions: dict[str, str]) -> dict[str, Any]:
        return {"metadata": {"name": "b"}, "status": {"conditions": list(conditions)}}

    assert multicluster.health({"metadata": {"name": "b"}}) is None
    assert multicluster.health(
        export({"type": "Conflict", "status": "True", "reason": "PortConflict", "message": "x"})
    ) == (False, "PortConflict", "ServiceExport b: x")
    assert multicluster.health(
        export({"type": "Valid", "status": "False", "reason": "NoService", "message": "y"})
    ) == (False, "NoService", "ServiceExport b: y")
    assert multicluster.health(
        export({"type": "Valid", "status": "True", "reason": "Exported", "message": ""})
    ) == (True, "Exported", "ServiceExport b: ")


# --- proxyless gRPC -----------------------------------------------------------------------


def test_proxyless_grpc_asks_for_the_grpc_agent_template_and_its_bootstrap() -> None:
    found = objects(agent(mesh={"mode": "sidecar", "grpc": "proxyless"}))
    template = pod_template(found)
    annotations = template["metadata"]["annotations"]
    assert annotations["inject.istio.io/templates"] == "grpc-agent"
    assert annotations["proxy.istio.io/config"] == '{"holdApplicationUntilProxyStarts": true}'
    labels = template["metadata"]["labels"]
    assert labels[c.LABEL_ISTIO_SIDECAR_INJECT] == "true"
    assert labels["security.istio.io/tlsMode"] == "istio"  # STRICT: callers send mTLS
    env = env_of(found)
    assert env["GRPC_XDS_BOOTSTRAP"] == "/etc/istio/proxy/grpc-bootstrap.json"
    assert env["GRPC_XDS_EXPERIMENTAL_SECURITY_SUPPORT"] == "true"
    permissive = objects(agent(mesh={"mode": "sidecar", "grpc": "proxyless", "mtls": "PERMISSIVE"}))
    assert "security.istio.io/tlsMode" not in pod_template(permissive)["metadata"]["labels"]
    # The default (proxy) changes nothing.
    plain = pod_template(objects(agent(mesh={"mode": "sidecar", "grpc": "proxy"})))
    assert "inject.istio.io/templates" not in plain["metadata"]["annotations"]
