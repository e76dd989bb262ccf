"""The demo's fleet end to end: the seven example agents become Ready and land where their
GPU requests allow, and `kubectl get aia` reports them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.conftest import (
    ROOT,
    SUMMARY,
    Cluster,
    Operator,
    eventually,
    wait_for_other_test_namespaces_gone,
)

pytestmark = pytest.mark.cluster
NAMESPACE = "ai-agents"
SEED_REPLICAS = {
    "orchestrator": 3,
    "coding": 5,
    "testing": 8,
    "security": 6,
    "compliance": 4,
    "documentation": 3,
    "discovery": 2,
}


@pytest.fixture
def fleet(cluster: Cluster, operator: Operator) -> Iterator[None]:
    wait_for_other_test_namespaces_gone(cluster, NAMESPACE)
    eventually(operator.settled, what="the operator to be idle")
    before = operator.writes_seen_by_the_api_server()
    by_kind = writes_by_verb_and_kind(operator)
    cluster.kubectl("apply", "-f", str(ROOT / "manifests" / "examples"))
    yield
    # Converged: every agent Ready and the operator idle after its last reconcile.
    operator.wait_for_a_quiet_reconcile(
        lambda: cluster.kubectl("annotate", "aia", "--all", "-n", NAMESPACE, "example.com/poke=1")
    )
    total = operator.writes_seen_by_the_api_server() - before
    after = writes_by_verb_and_kind(operator)
    counted = {key: n - by_kind.get(key, 0) for key, n in after.items() if n > by_kind.get(key, 0)}
    SUMMARY.append(
        f"example fleet: {len(SEED_REPLICAS)} agents converged with {total:.0f} writes by the"
        f" operator's identity (API server's count); by the operator's own count: {counted}"
    )
    # Waits: the fleet holds GPU slices that later tests' agents need.
    cluster.kubectl("delete", "namespace", NAMESPACE, "--timeout=120s", check=False)


def writes_by_verb_and_kind(operator: Operator) -> dict[str, float]:
    return {
        f"{dict(labels)['verb']} {dict(labels)['kind']}": value
        for (metric, labels), value in operator.metrics().items()
        if metric == "agentfleet_api_writes_total"
    }


def test_example_fleet_becomes_ready(cluster: Cluster, fleet: None) -> None:
    cluster.kubectl(
        "wait", "--for=condition=Ready", "aia", "--all", "-n", NAMESPACE, "--timeout=240s"
    )
    rows = [
        line.split()
        for line in cluster.kubectl("get", "aia", "-n", NAMESPACE).stdout.splitlines()[1:]
    ]
    seen = {row[0]: (row[1], row[2], int(row[3]), int(row[4])) for row in rows}
    assert seen == {name: (name, "True", count, count) for name, count in SEED_REPLICAS.items()}

    pods = client.CoreV1Api(cluster.api()).list_namespaced_pod(NAMESPACE).items
    assert len(pods) == sum(SEED_REPLICAS.values())
    if not cluster.local:
        return
    nodes_of = {
        name: {
            p.spec.node_name
            for p in pods
            if p.metadata.labels["app.kubernetes.io/instance"] == name
        }
        for name in SEED_REPLICAS
    }
    # 24Gi of VRAM on an exclusive GPU: only the 80 GB A100 and H100 nodes qualify.
    assert nodes_of["coding"] <= {"gpu-a100-1", "gpu-h100-1"}
    # A shared GPU: only the time-sliced L4 qualifies.
    assert nodes_of["documentation"] == {"gpu-l4-timeslice-1"}
