"""The operator against a real API server: apply an AIAgent, get a running, discoverable agent."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from agentfleet.api import constants as c
from tests.conftest import ROOT, Cluster, Operator, eventually, wait_for_other_test_namespaces_gone

pytestmark = pytest.mark.cluster


def agent_yaml(name: str, namespace: str, **spec: Any) -> str:
    body = {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"agentType": "coding", "image": "example.com/coding:1", "replicas": 2, **spec},
    }
    return yaml.safe_dump(body)


def get_agent(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(cluster.api()).get_namespaced_custom_object(
        c.GROUP, c.VERSION, namespace, c.PLURAL, name
    )


def condition(agent: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((x for x in agent.get("status", {}).get("conditions", []) if x["type"] == kind), {})


def wait_ready(cluster: Cluster, namespace: str, name: str, timeout: float = 90) -> dict[str, Any]:
    def ready() -> dict[str, Any]:
        agent = get_agent(cluster, namespace, name)
        ready = condition(agent, "Ready")
        assert ready.get("status") == "True", ready or agent.get("status")
        assert agent["status"]["observedGeneration"] == agent["metadata"]["generation"]
        return agent

    return eventually(ready, timeout=timeout, what=f"{namespace}/{name} Ready")


def apply(cluster: Cluster, text: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=text)


def test_apply_creates_deployment_service_and_identity_then_ready(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    apply(cluster, agent_yaml("coder", namespace))
    agent = wait_ready(cluster, namespace, "coder")

    core, apps = client.CoreV1Api(cluster.api()), client.AppsV1Api(cluster.api())
    deployment = apps.read_namespaced_deployment("coder", namespace)
    container = deployment.spec.template.spec.containers[0]
    assert {p.name: p.container_port for p in container.ports} == {
        "http": 8080,
        "grpc": 9090,
        "http-metrics": 9091,
        "http-health": 8081,
    }
    assert deployment.spec.template.spec.service_account_name == "coder"
    assert deployment.metadata.owner_references[0].controller is True
    service = core.read_namespaced_service("coder", namespace)
    assert [(p.name, p.port, p.app_protocol) for p in service.spec.ports] == [
        ("http", 8080, "http"),
        ("grpc", 9090, "grpc"),
        ("http-metrics", 9091, "http"),
        ("http-health", 8081, "http"),
    ]
    core.read_namespaced_service_account("coder", namespace)

    assert agent["status"]["readyReplicas"] == 2
    assert agent["status"]["endpoints"]["http"] == f"coder.{namespace}.svc.cluster.local:8080"
    assert condition(agent, "Reconciling")["status"] == "False"
    assert condition(agent, "Stalled")["status"] == "False"
    pods = core.list_namespaced_pod(
        namespace, label_selector="app.kubernetes.io/instance=coder"
    ).items
    assert len(pods) == 2 and all(p.spec.node_name for p in pods)


def test_kubectl_get_shows_the_truth(cluster: Cluster, operator: Operator, namespace: str) -> None:
    apply(
        cluster,
        agent_yaml(
            "doc",
            namespace,
            agentType="documentation",
            replicas=1,
            gpu={"count": 1, "vram": "16Gi", "sharing": "shared"},
        ),
    )
    wait_ready(cluster, namespace, "doc")
    table = cluster.kubectl("get", "aia", "-n", namespace).stdout.split("\n")
    assert table[0].split() == ["NAME", "TYPE", "READY", "REPLICAS", "AVAILABLE", "NODE/GPU", "AGE"]
    assert table[1].split()[:5] == ["doc", "documentation", "True", "1", "1"]
    assert "1x nvidia >=16Gi shared" in table[1]
    if cluster.local:  # a shared-GPU agent lands only on the time-sliced node
        pods = client.CoreV1Api(cluster.api()).list_namespaced_pod(namespace).items
        assert {p.spec.node_name for p in pods} == {"gpu-l4-timeslice-1"}


def test_edit_rolls_out(cluster: Cluster, operator: Operator, namespace: str) -> None:
    apply(cluster, agent_yaml("roll", namespace))
    first = wait_ready(cluster, namespace, "roll")
    apply(cluster, agent_yaml("roll", namespace, image="example.com/coding:2"))

    def rolled_out() -> None:
        agent = wait_ready(cluster, namespace, "roll", timeout=5)
        assert agent["metadata"]["generation"] == first["metadata"]["generation"] + 1
        dep = client.AppsV1Api(cluster.api()).read_namespaced_deployment("roll", namespace)
        assert dep.spec.template.spec.containers[0].image == "example.com/coding:2"
        assert (
            dep.status.updated_replicas == 2
            and dep.status.observed_generation == dep.metadata.generation
        )

    eventually(rolled_out, what="the new image rolled out")


def test_deleted_deployment_comes_back(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    apply(cluster, agent_yaml("phoenix", namespace))
    wait_ready(cluster, namespace, "phoenix")
    apps = client.AppsV1Api(cluster.api())
    old_uid = apps.read_namespaced_deployment("phoenix", namespace).metadata.uid
    apps.delete_namespaced_deployment("phoenix", namespace)

    def recreated() -> None:
        try:
            dep = apps.read_namespaced_deployment("phoenix", namespace)
        except ApiException as missing:
            raise AssertionError("not yet recreated") from missing
        assert dep.metadata.uid != old_uid

    eventually(recreated, timeout=30, what="the Deployment to be recreated")
    wait_ready(cluster, namespace, "phoenix")


def test_edited_child_is_restored(cluster: Cluster, operator: Operator, namespace: str) -> None:
    apply(cluster, agent_yaml("drift", namespace))
    wait_ready(cluster, namespace, "drift")
    patch = [{"op": "replace", "path": "/spec/ports/1/port", "value": 9999}]
    cluster.kubectl(
        "patch", "service", "drift", "-n", namespace, "--type=json", "-p", json.dumps(patch)
    )

    def restored() -> None:
        svc = client.CoreV1Api(cluster.api()).read_namespaced_service("drift", namespace)
        assert [p.port for p in svc.spec.ports] == [8080, 9090, 9091, 8081]

    eventually(restored, timeout=30, what="the Service ports to be restored")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
            "minReplicas must be <= maxReplicas",
        ),
        ({"gpu": {"count": 0, "vram": "24Gi"}}, "gpu.vram requires gpu.count >= 1"),
        ({"agentType": "poet"}, "Unsupported value"),
        ({"gpu": {"vram": "24GB"}}, "spec.gpu.vram"),
        ({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}, "must match a volumes[].name"),
    ],
)
def test_spec_rejected_by_the_crd_creates_nothing(
    cluster: Cluster, crd: None, namespace: str, spec: dict[str, Any], message: str
) -> None:
    result = cluster.kubectl(
        "apply", "-f", "-", input=agent_yaml("bad", namespace, **spec), check=False
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert cluster.kubectl(
        "get", "aia,deploy,svc,sa", "-n", namespace, "-o", "name"
    ).stdout.split() == ["serviceaccount/default"]


def test_bad_name_is_rejected_with_the_reason(cluster: Cluster, crd: None, namespace: str) -> None:
    result = cluster.kubectl("apply", "-f", "-", input=agent_yaml("9lives", namespace), check=False)
    assert result.returncode != 0 and "DNS-1035" in result.stderr


def test_spec_the_api_server_refuses_for_a_child_stalls_with_its_message(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    # The CRD passes volume sources through; the Deployment's own validation refuses a
    # volume with two sources.
    two_sources = {"name": "data", "emptyDir": {}, "configMap": {"name": "x"}}
    apply(
        cluster,
        agent_yaml(
            "stuck",
            namespace,
            volumes=[two_sources],
            volumeMounts=[{"name": "data", "mountPath": "/data"}],
        ),
    )

    def stalled() -> None:
        agent = get_agent(cluster, namespace, "stuck")
        stalled = condition(agent, "Stalled")
        assert stalled.get("status") == "True", agent.get("status")
        assert stalled["reason"] == "ApplyFailed"
        assert "may not specify more than 1 volume type" in stalled["message"]
        assert condition(agent, "Ready")["status"] == "False"

    eventually(stalled, timeout=30, what="Stalled=True")
    events = cluster.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        "involvedObject.name=stuck,type=Warning",
        "-o",
        "name",
    ).stdout
    assert events.strip(), "a Warning event explains the stall"
    # Fixing the spec recovers.
    apply(
        cluster,
        agent_yaml(
            "stuck",
            namespace,
            volumes=[{"name": "data", "emptyDir": {}}],
            volumeMounts=[{"name": "data", "mountPath": "/data"}],
        ),
    )
    wait_ready(cluster, namespace, "stuck")
    assert operator.process.poll() is None


def test_kubectl_scale(cluster: Cluster, operator: Operator, namespace: str) -> None:
    apply(cluster, agent_yaml("scaly", namespace))
    wait_ready(cluster, namespace, "scaly")
    cluster.kubectl("scale", "aia/scaly", "-n", namespace, "--replicas=5")

    def scaled() -> None:
        agent = wait_ready(cluster, namespace, "scaly", timeout=5)
        assert agent["status"]["replicas"] == 5 and agent["status"]["availableReplicas"] == 5
        dep = client.AppsV1Api(cluster.api()).read_namespaced_deployment("scaly", namespace)
        assert dep.spec.replicas == 5

    eventually(scaled, what="5 replicas")
    scale = json.loads(
        cluster.kubectl(
            "get", "aia/scaly", "-n", namespace, "--subresource=scale", "-o", "json"
        ).stdout
    )
    assert scale["status"]["replicas"] == 5
    assert (
        scale["status"]["selector"]
        == "app.kubernetes.io/instance=scaly,app.kubernetes.io/name=aiagent"
    )


def test_unchanged_agent_costs_zero_writes(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    wait_for_other_test_namespaces_gone(cluster, namespace)
    apply(cluster, agent_yaml("quiet", namespace))
    wait_ready(cluster, namespace, "quiet")
    # The last status write's own watch event is reconciled too: start counting after it.
    operator.wait_for_a_quiet_reconcile(
        lambda: cluster.kubectl("annotate", "aia/quiet", "-n", namespace, "example.com/settle=1")
    )
    writes = operator.writes_seen_by_the_api_server()

    def pokes() -> None:
        # Metadata-only changes deliver watch events, so the agent is reconciled again, twice:
        # once for itself, once for its Deployment (a foreign label is not drift). A label,
        # because annotating a Deployment bumps its generation, a real change to report.
        cluster.kubectl("annotate", "aia/quiet", "-n", namespace, "example.com/poke=1")
        cluster.kubectl("label", "deployment/quiet", "-n", namespace, "example.com/poke=1")

    operator.wait_for_a_quiet_reconcile(pokes, reconciles=2)
    assert operator.writes_seen_by_the_api_server() == writes


def test_deleting_the_agent_removes_its_children(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    apply(cluster, agent_yaml("gone", namespace))
    wait_ready(cluster, namespace, "gone")
    cluster.kubectl("delete", "aia/gone", "-n", namespace, "--timeout=30s")

    def children_gone() -> None:
        left = cluster.kubectl(
            "get", "deploy,svc,sa,pods", "-n", namespace, "-o", "name"
        ).stdout.split()
        assert left == ["serviceaccount/default"], left

    eventually(children_gone, what="garbage collection of the children")


def test_install_manifests_are_accepted_by_the_api_server(
    cluster: Cluster, operator: Operator
) -> None:
    # The operator fixture already runs with manifests/operator/rbac.yaml's identity; here the
    # rest of the install (CRD, namespace, Deployment) is validated by a server-side dry run.
    out = cluster.kubectl(
        "apply",
        "-k",
        str(ROOT / "manifests" / "operator"),
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
    ).stdout
    assert "deployment.apps/agentfleet-operator serverside-applied (server dry run)" in out
