"""Whatever refuses an agent's pods shows on the agent, and heals (issue 26).

The operator writes the Deployment; the ReplicaSet controller creates the pods, and the
cluster may refuse them: a ResourceQuota on pods, a LimitRange, an admission webhook (Pod
Security admission: test_pod_security.py). Before, the agent said "rolling out: 0 of 1
replicas updated" forever. Now the Deployment's ReplicaFailure (FailedCreate) becomes
Ready=False/Stalled=True with the cluster's own message, and goes when the refusal is lifted.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from agentfleet.api import constants as c
from tests.conftest import Cluster, Operator, eventually
from tests.integration.test_operator import agent_yaml, apply, condition, get_agent, wait_ready
from tests.integration.webhook import DENIED

pytestmark = pytest.mark.cluster


def refused_with(cluster: Cluster, namespace: str, name: str) -> str:
    def check() -> str:
        agent = get_agent(cluster, namespace, name)
        stalled = condition(agent, c.COND_STALLED)
        assert (stalled.get("status"), stalled.get("reason")) == ("True", "FailedCreate"), (
            agent.get("status")
        )
        ready = condition(agent, c.COND_READY)
        assert (ready.get("status"), ready.get("reason")) == ("False", "FailedCreate")
        assert ready["message"] == stalled["message"]
        return str(stalled["message"])

    return eventually(check, timeout=90, what=f"{name} Stalled/FailedCreate")


def create(cluster: Cluster, obj: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(obj))


def test_a_quota_on_pods_shows_on_the_agent_and_heals_when_raised(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    quota: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "pods", "namespace": namespace},
        "spec": {"hard": {"pods": "0"}},
    }
    create(cluster, quota)
    apply(cluster, agent_yaml("quota", namespace, replicas=1))
    message = refused_with(cluster, namespace, "quota")
    assert "0 of 1 replicas available; the cluster refuses the pods of Deployment quota: " in (
        message
    )
    assert "exceeded quota: pods" in message, message
    quota["spec"]["hard"]["pods"] = "5"
    create(cluster, quota)
    wait_ready(cluster, namespace, "quota", timeout=180)


def test_a_limit_range_shows_on_the_agent_and_heals_when_removed(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    limits = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "small", "namespace": namespace},
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "100m"}}]},
    }
    create(cluster, limits)
    resources = {"requests": {"cpu": "500m"}, "limits": {"cpu": "500m"}}
    apply(cluster, agent_yaml("big", namespace, replicas=1, resources=resources))
    message = refused_with(cluster, namespace, "big")
    assert "maximum cpu usage per Container is 100m" in message, message
    cluster.kubectl("delete", "limitrange", "small", "-n", namespace)
    wait_ready(cluster, namespace, "big", timeout=180)


def test_an_admission_webhook_that_refuses_pods_shows_on_the_agent_and_heals(
    cluster: Cluster, operator: Operator, namespace: str, denying_webhook: str
) -> None:
    cluster.kubectl("label", "namespace", namespace, f"{denying_webhook}=on")
    apply(cluster, agent_yaml("hooked", namespace, replicas=1))
    message = refused_with(cluster, namespace, "hooked")
    assert DENIED in message, message
    cluster.kubectl("label", "namespace", namespace, f"{denying_webhook}-")
    wait_ready(cluster, namespace, "hooked", timeout=180)
