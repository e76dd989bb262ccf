"""Autoscaling judged by the real KEDA operator and the real HPA controller (issue 18).

Each agent here gets a ScaledObject from the operator; KEDA (built from its Go module, running
against the local control plane) turns it into an HPA, and the controller-manager's HPA
controller scales the Deployment. The tests check what KEDA and the HPA did, who owns the
Deployment's spec.replicas (its managedFields), and how many writes the operator made.

The agents carry a shard label and are served by an operator of this module, started with
the fake Prometheus' address: its write counter then counts this module's agents only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import ProtocolError

from agentfleet.api import constants as c
from agentfleet_dev.cluster import ClusterState, LocalCluster
from agentfleet_dev.fake_prometheus import read_values, write_values
from tests.conftest import (
    SHARD_LABEL,
    SUMMARY,
    Cluster,
    Operator,
    eventually,
    operator_kubeconfig,
    start_operator,
)
from tests.integration.test_operator import condition, get_agent, wait_ready

pytestmark = pytest.mark.cluster

SHARD = "autoscaling"
PLAN = {  # the rollout plan's ranges (custom: the operator's own default)
    "orchestrator": (3, 3),
    "coding": (5, 100),
    "testing": (8, 200),
    "security": (6, 150),
    "compliance": (4, 100),
    "documentation": (3, 50),
    "discovery": (2, 20),
    "custom": (1, 10),
}
SCALED_OBJECT_CRD = "scaledobjects.keda.sh"


@pytest.fixture(scope="module")
def keda_state(cluster: Cluster) -> ClusterState:
    """The local control plane with KEDA's operator and the fake Prometheus running (added
    to the session's cluster if it was started without them)."""
    directory = Path(cluster.kubeconfig).parent
    state = ClusterState.load(directory)
    if state is None:
        pytest.skip("KEDA's operator runs only in the local control plane")
    if not state.keda:
        state = LocalCluster(directory).up(keda=True)
    for name in ("keda", "prometheus"):
        assert state.processes[name].alive(), f"{name} exited; see {state.directory}/logs"
    return state


@pytest.fixture(scope="module")
def scaling_operator(cluster: Cluster, crd: None, keda_state: ClusterState) -> Iterator[Operator]:
    handle = start_operator(
        operator_kubeconfig(cluster, name="autoscaling-operator"),
        "--agent-selector",
        f"{SHARD_LABEL}={SHARD}",
        "--prometheus-address",
        keda_state.prometheus_url,
        "--resync-seconds",
        "10",
        # Free-form scalers are refused unless allowed (test_policy.py); here they are part
        # of what is tested (KEDA's own verdict on a scaler it does not know).
        "--allow-scaler=*",
        name="autoscaling-operator",
    )
    try:
        yield handle
    finally:
        handle.stop()


# --- helpers ----------------------------------------------------------------------------------


def agent_yaml(name: str, namespace: str, agent_type: str = "discovery", **spec: Any) -> str:
    body = {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": {SHARD_LABEL: SHARD}},
        "spec": {"agentType": agent_type, "image": "example.com/agent:1", **spec},
    }
    return yaml.safe_dump(body)


def create(cluster: Cluster, *docs: str) -> None:
    cluster.kubectl("apply", "-f", "-", input="---\n".join(docs))


def patch_spec(cluster: Cluster, namespace: str, name: str, spec: dict[str, Any]) -> None:
    cluster.kubectl(
        "patch", f"aia/{name}", "-n", namespace, "--type=merge", "-p", json.dumps({"spec": spec})
    )


def scaler_ready(
    cluster: Cluster, namespace: str, name: str, status: str = "True", reason: str = ""
) -> dict[str, Any]:
    """Wait until the agent's ScalerReady has this status (and reason); return it."""

    def check() -> dict[str, Any]:
        agent = get_agent(cluster, namespace, name)
        said = condition(agent, c.COND_SCALER_READY)
        assert said.get("status") == status, said or agent.get("status")
        assert not reason or said.get("reason") == reason, said
        assert said.get("observedGeneration") == agent["metadata"]["generation"], said
        return said

    return eventually(check, timeout=120, what=f"{name} ScalerReady={status} {reason}")


def deployment(cluster: Cluster, namespace: str, name: str) -> Any:
    return client.AppsV1Api(cluster.api()).read_namespaced_deployment(name, namespace)


def hpa(cluster: Cluster, namespace: str, name: str) -> Any:
    return client.AutoscalingV2Api(cluster.api()).read_namespaced_horizontal_pod_autoscaler(
        f"keda-hpa-{name}", namespace
    )


def replicas_owners(obj: Any) -> set[str]:
    """Field managers that own the Deployment's spec.replicas."""
    return {
        entry.manager
        for entry in obj.metadata.managed_fields or []
        if "f:replicas" in ((entry.fields_v1 or {}).get("f:spec") or {})
    }


def running(
    cluster: Cluster, namespace: str, name: str, replicas: int, timeout: float = 150
) -> Any:
    """Wait until the Deployment asks for and has `replicas` ready ones."""

    def check() -> Any:
        try:
            found = deployment(cluster, namespace, name)
        except ApiException as error:
            raise AssertionError(f"Deployment {name}: {error.reason}") from error
        ready = found.status.ready_replicas or 0
        assert (found.spec.replicas, ready) == (replicas, replicas), (found.spec.replicas, ready)
        return found

    return eventually(check, timeout=timeout, what=f"{name} at {replicas} ready replicas")


def ready_at(
    cluster: Cluster, namespace: str, name: str, replicas: int, timeout: float = 150
) -> dict[str, Any]:
    """Wait until the agent is Ready and its status reports `replicas` running."""

    def check() -> dict[str, Any]:
        agent = wait_ready(cluster, namespace, name, timeout=timeout)
        status = agent["status"]
        assert (status["replicas"], status["availableReplicas"]) == (replicas, replicas), status
        return agent

    return eventually(check, timeout=timeout, what=f"{name} Ready with {replicas} replicas")


def gone(read: Any) -> bool:
    """Does reading the object answer 404 (for `eventually`: False while it exists)?"""
    try:
        read()
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def deployment_writes(operator: Operator) -> float:
    return operator.total("agentfleet_api_writes_total", kind="Deployment")


class ReplicasWatch:
    """Every spec.replicas a Deployment had, from a watch (each version, not a sample)."""

    def __init__(self, cluster: Cluster, namespace: str, name: str) -> None:
        self.seen: list[int] = []
        self._stopping = False
        self._watch = watch.Watch()
        api = client.AppsV1Api(cluster.api())
        start = api.read_namespaced_deployment(name, namespace)
        self.seen.append(start.spec.replicas)
        self._thread = threading.Thread(
            target=self._run,
            args=(api, namespace, name, start.metadata.resource_version),
            daemon=True,
        )
        self._thread.start()

    def _run(self, api: Any, namespace: str, name: str, version: str) -> None:
        try:
            for event in self._watch.stream(
                api.list_namespaced_deployment,
                namespace,
                field_selector=f"metadata.name={name}",
                resource_version=version,
                timeout_seconds=300,
            ):
                self.seen.append(event["object"].spec.replicas)
        except ProtocolError:  # the stream is cut when stop() closes it
            if not self._stopping:
                raise

    def stop(self) -> list[int]:
        self._stopping = True
        self._watch.stop()
        self._thread.join(timeout=10)
        return self.seen


# --- the CRD refuses what KEDA would refuse ---------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"autoscaling": {"triggers": [{"cpu": {"utilization": 70}}]}},
            "an autoscaling cpu trigger needs spec.resources.requests.cpu",
        ),
        (
            {
                "resources": {"requests": {"memory": "1Gi"}},
                "autoscaling": {"minReplicas": 0, "triggers": [{"memory": {"utilization": 70}}]},
            },
            "autoscaling.minReplicas 0 (scale to zero) needs a trigger other than cpu or memory",
        ),
        ({"autoscaling": {"idleReplicas": 1}}, "autoscaling.idleReplicas can only be 0"),
        (
            {
                "autoscaling": {
                    "idleReplicas": 0,
                    "minReplicas": 0,
                    "triggers": [{"queueDepth": {"query": "q", "threshold": 1}}],
                }
            },
            "autoscaling.idleReplicas must be < minReplicas",
        ),
        (
            {"autoscaling": {"idleReplicas": 0}},
            "autoscaling.idleReplicas needs a trigger other than cpu or memory",
        ),
        (
            {
                "resources": {"requests": {"cpu": "1"}},
                "autoscaling": {
                    "fallback": {"failureThreshold": 3, "replicas": 2},
                    "triggers": [{"cpu": {"utilization": 50}}],
                },
            },
            "autoscaling.fallback needs a trigger other than cpu or memory",
        ),
        (
            {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
            "autoscaling.minReplicas must be <= maxReplicas",
        ),
        (
            {"autoscaling": {"triggers": [{"scaler": {"type": "cpu"}}]}},
            "use the cpu or memory trigger instead of scaler.type cpu/memory",
        ),
        (
            {
                "autoscaling": {
                    "triggers": [
                        {"cpu": {"utilization": 5}, "queueDepth": {"query": "q", "threshold": 1}}
                    ]
                }
            },
            "a trigger needs exactly one of requestsPerSecond, queueDepth, cpu, memory, scaler",
        ),
    ],
)
def test_kubectl_apply_refuses_what_keda_would_refuse(
    cluster: Cluster, crd: None, namespace: str, spec: dict[str, Any], message: str
) -> None:
    refused = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=agent_yaml("bad", namespace, **spec),
        check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and message in refused.stderr, refused.stderr


def test_kubectl_apply_accepts_every_trigger_kind_together(
    cluster: Cluster, crd: None, namespace: str
) -> None:
    spec = {
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
        "autoscaling": {
            "minReplicas": 1,
            "idleReplicas": 0,
            "fallback": {"failureThreshold": 3, "replicas": 2},
            "triggers": [
                {"requestsPerSecond": {"threshold": 5}},
                {"queueDepth": {"query": "sum(q)", "threshold": 1}},
                {"cpu": {"utilization": 70}},
                {"memory": {"utilization": 70}},
                {"scaler": {"type": "cron", "metadata": {"timezone": "Etc/UTC"}}},
            ],
        },
    }
    cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=agent_yaml("good", namespace, **spec)
    )


# --- with KEDA ------------------------------------------------------------------------------


def test_each_agent_types_defaults_are_ready_in_keda_with_the_plans_range(
    cluster: Cluster, scaling_operator: Operator, namespace: str
) -> None:
    writes = scaling_operator.writes()
    create(cluster, *(agent_yaml(kind, namespace, kind, autoscaling={}) for kind in PLAN))
    for kind, (low, high) in PLAN.items():
        said = scaler_ready(cluster, namespace, kind, "True", "ScaledObjectReady")
        assert f"scales {low}-{high}" in said["message"], said
        found = hpa(cluster, namespace, kind)
        assert (found.spec.min_replicas, found.spec.max_replicas) == (low, high)
        assert found.spec.scale_target_ref.name == kind
    for kind, (low, _) in PLAN.items():
        ready_at(cluster, namespace, kind, low)  # created at the minimum, not at 1
        owners = replicas_owners(deployment(cluster, namespace, kind))
        assert c.FIELD_MANAGER not in owners, owners
    per_agent = (scaling_operator.writes() - writes) / len(PLAN)
    kinds = {
        f"{dict(labels)['verb']} {dict(labels)['kind']}": value
        for (metric, labels), value in scaling_operator.metrics().items()
        if metric == "agentfleet_api_writes_total"
    }
    SUMMARY.append(
        f"autoscaled agents: {per_agent:.1f} operator writes each, create -> Ready"
        f" (module totals so far: {kinds})"
    )


def test_changing_the_range_scales_through_keda_and_the_hpa_not_the_operator(
    cluster: Cluster, scaling_operator: Operator, namespace: str
) -> None:
    create(cluster, agent_yaml("grow", namespace, autoscaling={"minReplicas": 2, "maxReplicas": 6}))
    scaler_ready(cluster, namespace, "grow")
    running(cluster, namespace, "grow", 2)
    wait_ready(cluster, namespace, "grow")
    before = deployment_writes(scaling_operator)
    scaled_objects = scaling_operator.total("agentfleet_api_writes_total", kind="ScaledObject")

    patch_spec(cluster, namespace, "grow", {"autoscaling": {"minReplicas": 4}})
    eventually(lambda: hpa(cluster, namespace, "grow").spec.min_replicas == 4, what="HPA min 4")
    scaled = running(cluster, namespace, "grow", 4)
    ready_at(cluster, namespace, "grow", 4)

    assert deployment_writes(scaling_operator) == before, "the operator wrote the Deployment"
    assert (
        scaling_operator.total("agentfleet_api_writes_total", kind="ScaledObject")
        == scaled_objects + 1
    ), "one apply of the ScaledObject, nothing else"
    # KEDA's scale loop raises a Deployment below the minimum at once (the HPA would at its
    # next sync); either way the count is theirs now, not ours or the hand-over's.
    owners = replicas_owners(scaled)
    assert owners and owners <= {"keda", "kube-controller-manager"}, owners

    # Lowering the maximum below the running count is the HPA's alone (KEDA only raises).
    patch_spec(cluster, namespace, "grow", {"autoscaling": {"minReplicas": 2, "maxReplicas": 3}})
    lowered = running(cluster, namespace, "grow", 3)
    ready_at(cluster, namespace, "grow", 3)
    assert "kube-controller-manager" in replicas_owners(lowered)
    rescales = client.CoreV1Api(cluster.api()).list_namespaced_event(
        namespace, field_selector="involvedObject.name=keda-hpa-grow,reason=SuccessfulRescale"
    )
    assert any("New size: 3" in (e.message or "") for e in rescales.items), rescales.items
    assert deployment_writes(scaling_operator) == before, "the operator wrote the Deployment"
    applies = scaling_operator.total("agentfleet_api_writes_total", kind="ScaledObject")
    SUMMARY.append(
        "autoscaling: min 2->4 then max 6->3 moved the Deployment 2->4->3 with 0 operator"
        f" writes to it and {applies - scaled_objects:.0f} ScaledObject applies"
    )


def test_scaling_the_deployment_as_the_hpa_would_is_left_alone(
    cluster: Cluster, scaling_operator: Operator, namespace: str
) -> None:
    create(
        cluster, agent_yaml("steady", namespace, autoscaling={"minReplicas": 2, "maxReplicas": 6})
    )
    scaler_ready(cluster, namespace, "steady")
    running(cluster, namespace, "steady", 2)
    before = deployment_writes(scaling_operator)

    cluster.kubectl("scale", "deployment/steady", "-n", namespace, "--replicas=5")
    running(cluster, namespace, "steady", 5)
    reconciles = scaling_operator.reconciles()
    # `kubectl scale aia/...` changes spec.replicas, which is ignored while autoscaling is on.
    cluster.kubectl("scale", "aia/steady", "-n", namespace, "--replicas=9")
    eventually(
        lambda: scaling_operator.reconciles() > reconciles + 1, what="the operator to look again"
    )
    agent = wait_ready(cluster, namespace, "steady")
    assert (agent["spec"]["replicas"], agent["status"]["replicas"]) == (9, 5)
    assert deployment(cluster, namespace, "steady").spec.replicas == 5
    assert deployment_writes(scaling_operator) == before


def test_autoscaling_on_and_off_hands_replicas_over_without_a_dip(
    cluster: Cluster, scaling_operator: Operator, namespace: str
) -> None:
    create(
        cluster,
        agent_yaml(
            "switch", namespace, replicas=4,
            autoscaling={"enabled": False, "minReplicas": 3, "maxReplicas": 6},
        ),
    )  # fmt: skip
    running(cluster, namespace, "switch", 4)
    assert replicas_owners(deployment(cluster, namespace, "switch")) == {c.FIELD_MANAGER}

    seen = ReplicasWatch(cluster, namespace, "switch")
    patch_spec(cluster, namespace, "switch", {"autoscaling": {"enabled": True}})
    scaler_ready(cluster, namespace, "switch")
    eventually(lambda: hpa(cluster, namespace, "switch"), what="KEDA's HPA")
    handed = deployment(cluster, namespace, "switch")
    assert handed.spec.replicas == 4, "the running count is kept, not reset to 1 or the min"
    assert c.FIELD_MANAGER not in replicas_owners(handed)

    patch_spec(cluster, namespace, "switch", {"replicas": 5, "autoscaling": {"enabled": False}})
    custom = client.CustomObjectsApi(cluster.api())
    eventually(
        lambda: gone(
            lambda: custom.get_namespaced_custom_object(
                "keda.sh", "v1alpha1", namespace, "scaledobjects", "switch"
            )
        ),
        what="the ScaledObject to be deleted",
    )
    eventually(lambda: gone(lambda: hpa(cluster, namespace, "switch")), what="KEDA's HPA gone")
    back = running(cluster, namespace, "switch", 5)
    assert replicas_owners(back) == {c.FIELD_MANAGER}
    agent = wait_ready(cluster, namespace, "switch")
    assert c.COND_SCALER_READY not in {x["type"] for x in agent["status"]["conditions"]}
    history = seen.stop()
    assert min(history) >= 4, f"spec.replicas dipped: {history}"


def test_a_trigger_keda_rejects_shows_kedas_message_and_the_agent_still_runs(
    cluster: Cluster, scaling_operator: Operator, namespace: str
) -> None:
    nonsense = {"scaler": {"type": "no-such-scaler", "metadata": {"queue": "jobs"}}}
    create(cluster, agent_yaml("odd", namespace, autoscaling={"triggers": [nonsense]}))
    said = scaler_ready(cluster, namespace, "odd", "False", "ScaledObjectCheckFailed")
    assert said["message"].startswith("KEDA: "), said
    assert "no scaler found for type: no-such-scaler" in said["message"], said
    ready_at(cluster, namespace, "odd", PLAN["discovery"][0])


def test_keda_scales_an_idle_agent_from_zero_on_requests_per_second(
    cluster: Cluster, scaling_operator: Operator, keda_state: ClusterState, namespace: str
) -> None:
    """No HPA metrics here (KEDA's metrics adapter is not running): 0 <-> 1 is KEDA's own
    decision, from what the fake Prometheus answers to the agent's requests-per-second query."""
    scaling = {
        "minReplicas": 0,
        "maxReplicas": 3,
        "pollingIntervalSeconds": 1,
        "cooldownPeriodSeconds": 5,
        "triggers": [{"requestsPerSecond": {"threshold": 10}}],
    }
    values = Path(keda_state.prometheus_values)
    series = f'http_requests_total{{namespace="{namespace}",pod=~"idle-'
    write_values(values, {**read_values(values), series: 0})
    create(cluster, agent_yaml("idle", namespace, autoscaling=scaling))
    scaler_ready(cluster, namespace, "idle")
    running(cluster, namespace, "idle", 0)
    agent = wait_ready(cluster, namespace, "idle")
    assert condition(agent, c.COND_READY)["reason"] == c.Reason.SCALED_TO_ZERO
    before = deployment_writes(scaling_operator)

    write_values(values, {**read_values(values), series: 25})
    running(cluster, namespace, "idle", 1)
    said = scaler_ready(cluster, namespace, "idle")
    eventually(
        lambda: "triggers are active" in scaler_ready(cluster, namespace, "idle")["message"],
        what="ScalerReady to say KEDA's trigger is active",
    )
    assert said["reason"] == "ScaledObjectReady"

    write_values(values, {**read_values(values), series: 0})
    running(cluster, namespace, "idle", 0, timeout=60)
    assert deployment_writes(scaling_operator) == before


def test_keda_crd_removed_and_restored_converges_without_a_restart(
    cluster: Cluster, scaling_operator: Operator, keda_state: ClusterState, namespace: str
) -> None:
    """Last here: it takes the ScaledObject API away from the whole cluster for a while."""
    create(cluster, agent_yaml("lasting", namespace, autoscaling={"minReplicas": 3}))
    scaler_ready(cluster, namespace, "lasting")
    running(cluster, namespace, "lasting", 3)
    saved = json.loads(cluster.kubectl("get", "crd", SCALED_OBJECT_CRD, "-o", "json").stdout)
    pid = scaling_operator.process.pid
    seen = ReplicasWatch(cluster, namespace, "lasting")
    try:
        cluster.kubectl("delete", "crd", SCALED_OBJECT_CRD, "--timeout=120s")
        said = scaler_ready(cluster, namespace, "lasting", "False", c.Reason.CRD_NOT_INSTALLED)
        assert SCALED_OBJECT_CRD in said["message"]
        wait_ready(cluster, namespace, "lasting")
    finally:
        meta = saved["metadata"]
        saved["metadata"] = {k: meta[k] for k in ("name", "labels", "annotations") if k in meta}
        saved.pop("status", None)
        cluster.kubectl("create", "-f", "-", input=json.dumps(saved), check=False)
        cluster.kubectl(
            "wait", "--for=condition=Established", f"crd/{SCALED_OBJECT_CRD}", "--timeout=60s"
        )
    scaler_ready(cluster, namespace, "lasting", "True", "ScaledObjectReady")
    eventually(lambda: hpa(cluster, namespace, "lasting"), what="KEDA's HPA again")
    assert scaling_operator.process.pid == pid and scaling_operator.process.poll() is None
    assert keda_state.processes["keda"].alive(), "KEDA's operator exited"
    history = seen.stop()
    assert set(history) == {3}, f"spec.replicas changed while the CRD was away: {history}"
