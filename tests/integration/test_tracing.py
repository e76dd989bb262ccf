"""The operator's traces and logs, received by a real OTLP receiver (Jaeger v2, built from the
Go module proxy): a reconcile of a named agent and the placement of its GPU replica arrive as
spans carrying that agent's attributes, and the operator's JSON log lines written inside them
carry the same trace ids. An agent's own tracing settings become the OpenTelemetry
environment of its pods."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from agentfleet.telemetry.tracing import AGENT_NAME, AGENT_NAMESPACE, SERVICE_NAME
from tests.conftest import SHARD_LABEL, Cluster, eventually, operator_kubeconfig, start_operator
from tests.integration.jaeger import Jaeger, span_tags
from tests.integration.test_operator import agent_yaml, apply, wait_ready

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def jaeger(cluster: Cluster) -> Iterator[Jaeger]:
    with Jaeger() as receiver:
        yield receiver


def in_shard(text: str, shard: str) -> str:
    body = yaml.safe_load(text)
    body["metadata"]["labels"] = {SHARD_LABEL: shard}
    return yaml.safe_dump(body)


def spans_of(jaeger: Jaeger, namespace: str, name: str, operation: str) -> list[dict[str, Any]]:
    tags = {AGENT_NAMESPACE: namespace, AGENT_NAME: name}
    return [
        span
        for trace in jaeger.traces(SERVICE_NAME, tags)
        for span in trace["spans"]
        if span["operationName"] == operation and span_tags(span).items() >= tags.items()
    ]


def test_reconciles_and_placements_arrive_in_jaeger_with_the_agents_attributes(
    cluster: Cluster, crd: None, namespace: str, jaeger: Jaeger
) -> None:
    shard = f"tracing-{uuid.uuid4().hex[:6]}"
    operator = start_operator(
        operator_kubeconfig(cluster, name="tracing-operator"),
        "--agent-selector",
        f"{SHARD_LABEL}={shard}",
        "--tracing-endpoint",
        jaeger.otlp_http_endpoint,
        "--log-format",
        "json",
        name="tracing-operator",
    )
    try:
        gpu = {"gpu": {"count": 1, "vram": "1Gi", "sharing": "shared"}}
        apply(cluster, in_shard(agent_yaml("traced", namespace, replicas=1, **gpu), shard))
        wait_ready(cluster, namespace, "traced")

        reconciles = eventually(
            lambda: spans_of(jaeger, namespace, "traced", "reconcile") or False,
            timeout=60,
            what="the reconcile spans of traced in Jaeger",
        )
        outcomes = {span_tags(span).get("agentfleet.reconcile.result") for span in reconciles}
        assert outcomes <= {"success", "requeue", "requeue_after", "error", "gone"}, outcomes
        placements = eventually(
            lambda: spans_of(jaeger, namespace, "traced", "place") or False,
            timeout=60,
            what="the placement span of traced's replica in Jaeger",
        )
        placed = [span_tags(s) for s in placements if "agentfleet.placement.node" in span_tags(s)]
        assert placed, [span_tags(s) for s in placements]
        pod = get_pod(cluster, namespace, "traced")
        assert placed[-1]["k8s.pod.name"] == pod["metadata"]["name"]
        decision = json.loads(pod["metadata"]["annotations"]["agentfleet.io/placement"])
        assert placed[-1]["agentfleet.placement.node"] == decision["node"]

        # The JSON log lines written inside those spans carry their trace ids.
        traced = {span["traceID"] for span in reconciles + placements}
        lines = [json.loads(line) for line in operator.log_path.read_text().splitlines()]
        about = [line for line in lines if line.get("agent") == f"{namespace}/traced"]
        assert about, "no log line names the agent"
        with_ids = [line for line in about if "trace_id" in line]
        assert with_ids and all(len(line["trace_id"]) == 32 for line in with_ids)
        assert {line["trace_id"] for line in with_ids} & traced
        assert all({"message", "timestamp"} <= set(line) for line in lines), lines[:3]
    finally:
        operator.stop()


def get_pod(cluster: Cluster, namespace: str, agent: str) -> dict[str, Any]:
    pods = json.loads(
        cluster.kubectl(
            "get",
            "pods",
            "-n",
            namespace,
            "-l",
            f"app.kubernetes.io/instance={agent}",
            "-o",
            "json",
        ).stdout
    )["items"]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return dict(pods[0])


def test_an_agents_tracing_becomes_its_pods_opentelemetry_environment(
    cluster: Cluster, crd: None, namespace: str, operator: Any
) -> None:
    tracing = {"samplingPercent": 20, "endpoint": "http://otel-collector.observability:4317"}
    apply(
        cluster,
        agent_yaml(
            "observed",
            namespace,
            replicas=1,
            image="example.com/agent:3.1.4",
            observability={"tracing": tracing},
        ),
    )
    wait_ready(cluster, namespace, "observed")
    pod = get_pod(cluster, namespace, "observed")
    env = {var["name"]: var.get("value") for var in pod["spec"]["containers"][0]["env"]}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == tracing["endpoint"]
    assert env["OTEL_SERVICE_NAME"] == "observed"
    assert (env["OTEL_TRACES_SAMPLER"], env["OTEL_TRACES_SAMPLER_ARG"]) == (
        "parentbased_traceidratio",
        "0.2",
    )
    attributes = env["OTEL_RESOURCE_ATTRIBUTES"]
    assert f"k8s.namespace.name={namespace}" in attributes
    assert "service.version=3.1.4" in attributes and "agentfleet.agent.type=coding" in attributes
    # The CRD refuses a sampling share above 100% and an endpoint that is not a URL.
    for bad, field in (
        ({"samplingPercent": 150}, "samplingPercent"),
        ({"endpoint": "otel"}, "endpoint"),
    ):
        proc = cluster.kubectl(
            "apply",
            "-f",
            "-",
            input=agent_yaml("bad", namespace, observability={"tracing": bad}),
            check=False,
        )
        assert proc.returncode != 0 and field in proc.stderr, proc.stderr
