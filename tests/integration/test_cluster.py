"""The control plane under test is a real Kubernetes: controllers run, kwok nodes host Ready
Pods, the garbage collector follows ownerReferences, upstream CRDs validate objects, and the
real peers that judge the operator's objects (KEDA's operator, istioctl) work against it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from agentfleet_dev import build, versions
from agentfleet_dev.cluster import ClusterState
from agentfleet_dev.fake_prometheus import read_values, write_values
from tests.conftest import Cluster, eventually

pytestmark = pytest.mark.cluster


def _create_deployment(cluster: Cluster, namespace: str, name: str, replicas: int) -> None:
    labels = {"app": name}
    container = client.V1Container(
        name="c",
        image="example.com/x:1",
        # KEDA's cpu trigger (an HPA Utilization metric) is relative to the request.
        resources=client.V1ResourceRequirements(requests={"cpu": "100m"}),
    )
    client.AppsV1Api(cluster.api()).create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1DeploymentSpec(
                replicas=replicas,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[container]),
                ),
            ),
        ),
    )


def test_deployment_becomes_ready_on_simulated_nodes(cluster: Cluster, namespace: str) -> None:
    apps = client.AppsV1Api(cluster.api())
    _create_deployment(cluster, namespace, "probe", replicas=3)

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


def test_prometheus_operator_crds_accept_monitors_and_rules(
    cluster: Cluster, namespace: str
) -> None:
    """What a Helm chart ships for Prometheus Operator is checked by the real CRD schemas."""
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "agents"},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/part-of": "agentfleet"}},
            "endpoints": [{"port": "http-metrics", "path": "/metrics", "interval": "30s"}],
        },
    }
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "agents"},
        "spec": {
            "groups": [
                {
                    "name": "agentfleet",
                    "rules": [{"alert": "AgentDown", "expr": "up == 0", "for": "5m"}],
                }
            ]
        },
    }
    for body, plural in ((monitor, "servicemonitors"), (rule, "prometheusrules")):
        _create_custom(cluster, "monitoring.coreos.com", "v1", plural, namespace, body)
    bad = {**monitor, "metadata": {"name": "bad"}}
    bad["spec"] = {**monitor["spec"], "endpoints": [{"port": "x", "interval": "half a minute"}]}
    with pytest.raises(ApiException) as rejected:
        _create_custom(cluster, "monitoring.coreos.com", "v1", "servicemonitors", namespace, bad)
    assert rejected.value.status == 422
    assert "interval" in rejected.value.body


# --- KEDA's operator ----------------------------------------------------------------------


@pytest.fixture
def keda(cluster: Cluster) -> ClusterState:
    """The local cluster's state, with KEDA's operator and the fake Prometheus running (still:
    KEDA's operator exits on its own when, e.g., a CRD it watches is missing)."""
    state = ClusterState.load(Path(cluster.kubeconfig).parent)
    if state is None:
        pytest.skip("KEDA's operator runs only in the local control plane")
    if not state.keda:
        pytest.fail(
            "the local control plane runs without KEDA: tests/conftest.py must start it with "
            "LocalCluster.up(..., keda=True)"
        )
    for name in ("keda", "prometheus"):
        assert state.processes[name].alive(), f"{name} exited; see {state.directory}/logs"
    return state


def _scaled_object(name: str, triggers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name},
        "spec": {"scaleTargetRef": {"name": name}, "triggers": triggers, **spec},
    }


def _conditions(cluster: Cluster, namespace: str, name: str) -> dict[str, dict[str, str]]:
    scaled_object = client.CustomObjectsApi(cluster.api()).get_namespaced_custom_object(
        "keda.sh", "v1alpha1", namespace, "scaledobjects", name
    )
    conditions = scaled_object.get("status", {}).get("conditions", [])
    return {c["type"]: c for c in conditions}


def _condition_is(cluster: Cluster, namespace: str, name: str, kind: str, status: str) -> None:
    condition = _conditions(cluster, namespace, name).get(kind, {})
    assert condition.get("status") == status, f"{kind}: {condition}"


def test_keda_hpa_scales_a_deployment_to_the_scaled_objects_minimum(
    cluster: Cluster, keda: ClusterState, namespace: str
) -> None:
    _create_deployment(cluster, namespace, "web", replicas=1)
    cpu = {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}}
    _create_custom(
        cluster,
        "keda.sh",
        "v1alpha1",
        "scaledobjects",
        namespace,
        _scaled_object("web", [cpu], minReplicaCount=3, maxReplicaCount=5),
    )

    eventually(
        lambda: _condition_is(cluster, namespace, "web", "Ready", "True"),
        what="KEDA to mark the ScaledObject Ready",
    )
    autoscaling = client.AutoscalingV2Api(cluster.api())
    hpa = eventually(
        lambda: autoscaling.read_namespaced_horizontal_pod_autoscaler("keda-hpa-web", namespace),
        what="KEDA to create keda-hpa-web",
    )
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (3, 5)
    assert hpa.spec.scale_target_ref.name == "web"
    assert [(o.kind, o.name) for o in hpa.metadata.owner_references] == [("ScaledObject", "web")]

    apps = client.AppsV1Api(cluster.api())

    def scaled_to_three() -> None:
        status = apps.read_namespaced_deployment("web", namespace).status
        assert status.ready_replicas == 3, f"readyReplicas={status.ready_replicas}"

    eventually(scaled_to_three, timeout=120, what="the HPA to scale the Deployment to 3")
    # The HPA controller did it, not KEDA (which only scales between zero and one itself).
    rescales = client.CoreV1Api(cluster.api()).list_namespaced_event(
        namespace, field_selector="involvedObject.name=keda-hpa-web,reason=SuccessfulRescale"
    )
    assert any("New size: 3" in (e.message or "") for e in rescales.items), rescales.items


def _set_prometheus_value(state: ClusterState, query_part: str, value: float) -> None:
    path = Path(state.prometheus_values)
    write_values(path, {**read_values(path), query_part: value})


def test_keda_prometheus_trigger_follows_the_fake_prometheus(
    cluster: Cluster, keda: ClusterState, namespace: str
) -> None:
    """KEDA's own prometheus scaler asks the fake Prometheus; its answer flips Active and KEDA
    (not the HPA) scales the Deployment up from zero."""
    series = f'agentfleet_queue_depth{{namespace="{namespace}"}}'
    _set_prometheus_value(keda, series, 0)
    _create_deployment(cluster, namespace, "queue", replicas=0)
    trigger = {
        "type": "prometheus",
        "metadata": {
            "serverAddress": keda.prometheus_url,
            "query": f"sum({series})",
            "threshold": "10",
        },
    }
    _create_custom(
        cluster,
        "keda.sh",
        "v1alpha1",
        "scaledobjects",
        namespace,
        _scaled_object("queue", [trigger], minReplicaCount=0, maxReplicaCount=4, pollingInterval=2),
    )

    def ready_and_idle() -> None:
        _condition_is(cluster, namespace, "queue", "Ready", "True")
        _condition_is(cluster, namespace, "queue", "Active", "False")

    eventually(ready_and_idle, what="KEDA to report the trigger Ready and not Active at 0")
    apps = client.AppsV1Api(cluster.api())
    assert apps.read_namespaced_deployment("queue", namespace).spec.replicas == 0

    _set_prometheus_value(keda, series, 25)
    eventually(
        lambda: _condition_is(cluster, namespace, "queue", "Active", "True"),
        what="KEDA to report the trigger Active at 25",
    )

    def scaled_from_zero() -> None:
        replicas = apps.read_namespaced_deployment("queue", namespace).spec.replicas
        assert replicas >= 1, f"spec.replicas={replicas}"

    eventually(scaled_from_zero, what="KEDA to scale the Deployment up from zero")


# --- istioctl -------------------------------------------------------------------------------


def _istioctl(*args: str) -> subprocess.CompletedProcess[str]:
    istioctl = build.toolchain(lambda _: None).bin["istioctl"]
    return subprocess.run(
        [str(istioctl), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_istioctl_is_the_pinned_build() -> None:
    result = _istioctl("version", "--remote=false")
    assert result.returncode == 0, result.stderr
    assert versions.ISTIO in result.stdout


def test_istioctl_analyze_reports_a_route_to_a_missing_host_on_the_live_cluster(
    cluster: Cluster, namespace: str
) -> None:
    core = client.CoreV1Api(cluster.api())
    core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="present"),
            spec=client.V1ServiceSpec(
                selector={"app": "present"},
                ports=[client.V1ServicePort(name="http", port=8080)],
            ),
        ),
    )
    for name, host in (("to-missing", "missing"), ("to-present", "present")):
        route = {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": name},
            "spec": {
                "hosts": [f"{name}.example.com"],
                "http": [{"route": [{"destination": {"host": host}}]}],
            },
        }
        _create_custom(cluster, "networking.istio.io", "v1", "virtualservices", namespace, route)

    result = _istioctl("analyze", f"--kubeconfig={cluster.kubeconfig}", "-n", namespace)
    findings = (result.stdout + result.stderr).splitlines()
    ist0101 = [line for line in findings if "IST0101" in line]
    assert any(f"VirtualService {namespace}/to-missing" in line for line in ist0101), findings
    assert not any("to-present" in line for line in ist0101), findings
