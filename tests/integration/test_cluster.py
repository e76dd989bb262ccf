"""The control plane under test is a real Kubernetes: controllers run, kwok nodes host Ready
Pods, the garbage collector follows ownerReferences, and upstream CRDs validate objects."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.conftest import Cluster, eventually

pytestmark = pytest.mark.cluster


def test_deployment_becomes_ready_on_simulated_nodes(cluster: Cluster, namespace: str) -> None:
    apps = client.AppsV1Api(cluster.api())
    labels = {"app": "probe"}
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="probe"),
            spec=client.V1DeploymentSpec(
                replicas=3,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        containers=[client.V1Container(name="c", image="example.com/x:1")]
                    ),
                ),
            ),
        ),
    )

    def ready() -> None:
        status = apps.read_namespaced_deployment_status("probe", namespace).status
        assert status.ready_replicas == 3, f"readyReplicas={status.ready_replicas}"

    eventually(ready, what="3/3 replicas Ready")
    pods = (
        client.CoreV1Api(cluster.api())
        .list_namespaced_pod(namespace, label_selector="app=probe")
        .items
    )
    assert len(pods) == 3
    assert all(p.spec.node_name and p.status.phase == "Running" for p in pods)


def test_garbage_collector_deletes_owned_objects(cluster: Cluster, namespace: str) -> None:
    core = client.CoreV1Api(cluster.api())
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name="child",
                owner_references=[
                    client.V1OwnerReference(
                        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
                    )
                ],
            )
        ),
    )
    core.delete_namespaced_config_map("owner", namespace)

    def child_gone() -> None:
        names = [cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items]
        assert "child" not in names, names

    eventually(child_gone, what="the garbage collector to delete the child")


def _create_custom(
    cluster: Cluster, group: str, version: str, plural: str, namespace: str, body: dict[str, Any]
) -> None:
    client.CustomObjectsApi(cluster.api()).create_namespaced_custom_object(
        group, version, namespace, plural, body
    )


def test_istio_schema_rejects_a_destination_rule_with_a_wrong_field_type(
    cluster: Cluster, namespace: str
) -> None:
    bad = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "bad"},
        "spec": {
            "host": "x",
            "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": "five"}},
        },
    }
    with pytest.raises(ApiException) as rejected:
        _create_custom(cluster, "networking.istio.io", "v1", "destinationrules", namespace, bad)
    assert rejected.value.status == 422
    assert "consecutive5xxErrors" in rejected.value.body
    good = {
        **bad,
        "spec": {"host": "x", "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": 5}}},
    }
    _create_custom(cluster, "networking.istio.io", "v1", "destinationrules", namespace, good)


def test_keda_schema_rejects_a_scaled_object_with_a_wrong_field_type(
    cluster: Cluster, namespace: str
) -> None:
    bad = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "bad"},
        "spec": {
            "scaleTargetRef": {"name": "x"},
            "minReplicaCount": "five",
            "triggers": [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}}],
        },
    }
    with pytest.raises(ApiException) as rejected:
        _create_custom(cluster, "keda.sh", "v1alpha1", "scaledobjects", namespace, bad)
    assert rejected.value.status == 422
    assert "minReplicaCount" in rejected.value.body


def test_gateway_api_crds_are_served(cluster: Cluster, namespace: str) -> None:
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r"},
        "spec": {"rules": [{"backendRefs": [{"name": "svc", "port": 8080}]}]},
    }
    _create_custom(cluster, "gateway.networking.k8s.io", "v1", "httproutes", namespace, route)


def test_simulated_gpu_nodes_advertise_gpus(cluster: Cluster) -> None:
    if not cluster.local:
        pytest.skip("simulated nodes exist only on the local control plane")
    nodes = {n.metadata.name: n for n in client.CoreV1Api(cluster.api()).list_node().items}
    assert {
        "cpu-1",
        "cpu-2",
        "cpu-3",
        "gpu-a100-1",
        "gpu-h100-1",
        "gpu-l4-timeslice-1",
        "gpu-mi300x-1",
    } <= set(nodes)
    a100 = nodes["gpu-a100-1"]
    assert a100.metadata.labels["nvidia.com/gpu.memory"] == "81920"
    assert a100.status.allocatable["nvidia.com/gpu"] == "8"
    assert (
        nodes["gpu-l4-timeslice-1"].metadata.labels["nvidia.com/gpu.sharing-strategy"]
        == "time-slicing"
    )
    assert nodes["gpu-mi300x-1"].status.allocatable["amd.com/gpu"] == "8"
    for node in nodes.values():
        ready = next(c for c in node.status.conditions if c.type == "Ready")
        assert ready.status == "True", node.metadata.name
