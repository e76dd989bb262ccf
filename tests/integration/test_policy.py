"""The operator's policy beyond Pod Security, on the real apiserver with the operator's own RBAC
(issue 26): which identities an agent may run as (and a change of their mark), where agents
may live, device variables that would bypass the VRAM ledger, and KEDA passthrough. Each
refusal is Stalled/PolicyViolation naming the field, with nothing created."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from agentfleet.api import constants as c
from tests.conftest import Cluster, Operator, eventually
from tests.integration.test_operator import agent_yaml, apply, condition, get_agent, wait_ready

pytestmark = pytest.mark.cluster


def refused(cluster: Cluster, namespace: str, name: str, *words: str) -> str:
    def check() -> str:
        agent = get_agent(cluster, namespace, name)
        stalled = condition(agent, c.COND_STALLED)
        assert (stalled.get("status"), stalled.get("reason")) == ("True", "PolicyViolation"), (
            agent.get("status")
        )
        assert agent["status"]["observedGeneration"] == agent["metadata"]["generation"]
        for word in words:
            assert word in stalled["message"], stalled["message"]
        return str(stalled["message"])

    return eventually(check, timeout=60, what=f"{namespace}/{name} Stalled/PolicyViolation")


def no_deployment(cluster: Cluster, namespace: str, name: str) -> None:
    with pytest.raises(ApiException) as missing:
        client.AppsV1Api(cluster.api()).read_namespaced_deployment(name, namespace)
    assert missing.value.status == 404


def service_account(cluster: Cluster, namespace: str, name: str, marked: bool | None) -> None:
    """Create the ServiceAccount, or set (True/False) or remove (None) its mark."""
    core = client.CoreV1Api(cluster.api())
    labels: dict[str, Any] = {
        c.LABEL_AGENT_IDENTITY: None if marked is None else str(marked).lower()
    }
    names = {s.metadata.name for s in core.list_namespaced_service_account(namespace).items}
    if name in names:
        core.patch_namespaced_service_account(name, namespace, {"metadata": {"labels": labels}})
    else:
        body = {"metadata": {"name": name, "labels": {k: v for k, v in labels.items() if v}}}
        core.create_namespaced_service_account(namespace, body)


def test_an_agent_runs_only_as_a_service_account_its_namespace_marked_and_the_mark_is_watched(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    service_account(cluster, namespace, "bot", marked=None)
    apply(cluster, agent_yaml("borrower", namespace, replicas=1, serviceAccountName="bot"))
    refused(
        cluster, namespace, "borrower",
        "spec.serviceAccountName 'bot' is not marked for agents",
        f"label that ServiceAccount {c.LABEL_AGENT_IDENTITY}=true",
    )  # fmt: skip
    no_deployment(cluster, namespace, "borrower")

    # The namespace's owner marks it: the agent is judged again without an edit.
    service_account(cluster, namespace, "bot", marked=True)
    wait_ready(cluster, namespace, "borrower")
    pods = client.CoreV1Api(cluster.api()).list_namespaced_pod(
        namespace, label_selector=f"{c.LABEL_INSTANCE}=borrower"
    )
    assert {p.spec.service_account_name for p in pods.items} == {"bot"}

    # A mark set to anything but "true" is no mark: refused again.
    service_account(cluster, namespace, "bot", marked=False)
    refused(cluster, namespace, "borrower", "is not marked for agents")


def test_no_agents_in_the_clusters_own_namespaces_or_the_operators(
    cluster: Cluster, operator: Operator
) -> None:
    made = []
    try:
        for namespace in ("kube-system", c.OPERATOR_NAMESPACE):
            apply(cluster, agent_yaml("intruder", namespace, replicas=1))
            made.append(namespace)
            refused(cluster, namespace, "intruder", f"metadata.namespace: no agents in {namespace}")
            no_deployment(cluster, namespace, "intruder")
    finally:
        for namespace in made:
            cluster.kubectl("delete", "aia/intruder", "-n", namespace, "--wait=false", check=False)


def test_variables_that_would_reach_gpus_past_the_ledger_are_refused(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    from_map = {"configMapKeyRef": {"name": "gpus", "key": "devices"}}
    env = [
        {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
        {"name": "AMD_VISIBLE_DEVICES", "valueFrom": from_map},
        {"name": "CUDA_VISIBLE_DEVICES", "value": "0"},  # chooses among visible ones: allowed
    ]
    apply(cluster, agent_yaml("sneaky", namespace, replicas=1, env=env))
    message = refused(cluster, namespace, "sneaky", "spec.env[0] sets NVIDIA_VISIBLE_DEVICES")
    assert "spec.env[1] sets AMD_VISIBLE_DEVICES" in message
    assert "CUDA_VISIBLE_DEVICES" not in message
    no_deployment(cluster, namespace, "sneaky")
    # An agent without GPUs gets none from an image's ENV or an envFrom either.
    apply(cluster, agent_yaml("honest", namespace, replicas=1))
    wait_ready(cluster, namespace, "honest")
    deployment = client.AppsV1Api(cluster.api()).read_namespaced_deployment("honest", namespace)
    env_of = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}
    assert env_of["NVIDIA_VISIBLE_DEVICES"] == "void"


def test_keda_passthrough_borrows_no_credentials_and_reaches_no_chosen_metrics(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    """This operator allows no free-form scaler and no ClusterTriggerAuthentication (the
    defaults); the autoscaling tests' operator allows them (--allow-scaler='*')."""
    borrowed = {
        "type": "prometheus",
        "metadata": {"serverAddress": "http://prometheus.other-team:9090", "query": "up"},
        "authenticationRef": {"name": "admin", "kind": "ClusterTriggerAuthentication"},
    }
    scaling = {"autoscaling": {"triggers": [{"scaler": borrowed}]}}
    apply(cluster, agent_yaml("borrowing", namespace, **scaling))
    message = refused(
        cluster, namespace, "borrowing",
        "spec.autoscaling.triggers[0].scaler: KEDA scaler 'prometheus' is not allowed here",
        "ClusterTriggerAuthentication 'admin'",
        "--allow-scaler=prometheus", "--allow-cluster-trigger-authentication",
    )  # fmt: skip
    assert message
    no_deployment(cluster, namespace, "borrowing")
