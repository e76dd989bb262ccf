"""The operator's policy beyond Pod Security (controllers/policy.py): namespaces, identities,
device variables and autoscaling. Pod Security itself: test_podsecurity.py."""

from __future__ import annotations

from typing import Any

import pytest

from agentfleet.api import constants as c
from agentfleet.api.config import Policy
from agentfleet.api.models import AIAgent
from agentfleet.controllers import policy
from agentfleet.render import deployment
from agentfleet.render.context import RenderContext
from tests.unit.conftest import agent_from


def agent(name: str = "demo", namespace: str = "team-a", **spec: Any) -> AIAgent:
    return agent_from({"agentType": "custom", "image": "example.com/a:1", **spec}, name, namespace)


def refused(
    subject: AIAgent, marked: set[tuple[str, str]] | None = None, **config: Any
) -> list[str]:
    found = policy.violations(
        subject, Policy(**config), marked=lambda ns, name: (ns, name) in (marked or set())
    )
    return [v.text for v in found]


# --- namespaces --------------------------------------------------------------------------------


def test_no_agents_in_system_namespaces_or_the_operators_own_unless_allowed() -> None:
    assert refused(agent(namespace="kube-system")) == [
        "metadata.namespace: no agents in kube-system, a namespace of the cluster's own components"
    ]
    assert refused(agent(namespace="kube-system"), allow_agents_in_system_namespaces=True) == []
    here = agent(namespace=c.OPERATOR_NAMESPACE)
    assert refused(here) != []
    assert refused(here, allow_agents_in_operator_namespace=True) == []
    assert refused(agent(namespace="ops"), operator_namespace="ops") != []


# --- identities --------------------------------------------------------------------------------


def test_an_agent_runs_as_its_own_identity_or_one_its_namespace_marked() -> None:
    assert refused(agent()) == []
    assert refused(agent(serviceAccountName="demo")) == []  # its own name: its own identity
    bot = agent(serviceAccountName="bot")
    [said] = refused(bot)
    assert said == (
        "spec.serviceAccountName 'bot' is not marked for agents: the namespace's owner must"
        f" label that ServiceAccount {c.LABEL_AGENT_IDENTITY}=true"
    )
    assert refused(bot, marked={("team-a", "bot")}) == []
    assert refused(bot, marked={("team-b", "bot")}) != [], "a mark counts in its namespace only"
    assert refused(bot, service_accounts="any") == []
    assert refused(bot, marked={("team-a", "bot")}, service_accounts="own") != []


def test_no_agent_runs_as_agentfleets_own_components_or_a_waypoint_whatever_the_flags() -> None:
    loose = {"service_accounts": "any", "allow_agents_in_operator_namespace": True}
    for name in c.COMPONENT_SERVICE_ACCOUNTS:
        assert refused(agent(namespace=c.OPERATOR_NAMESPACE, serviceAccountName=name), **loose)
        assert refused(agent(name, namespace=c.OPERATOR_NAMESPACE), **loose)
    assert refused(agent(serviceAccountName=c.COMPONENT_SERVICE_ACCOUNTS[0]), **loose) == []
    for name in ("waypoint", "coding-waypoint"):
        assert refused(agent(serviceAccountName=name), marked={("team-a", name)}, **loose)
        assert refused(agent(name)), "its own ServiceAccount would be the waypoint's"


# --- device variables ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", "NVIDIA_REQUIRE_CUDA",
     "NVIDIA_MIG_CONFIG_DEVICES", "AMD_VISIBLE_DEVICES"],
)  # fmt: skip
def test_device_variables_are_refused_as_values_and_as_references(name: str) -> None:
    by_value = agent(env=[{"name": name, "value": "all"}])
    by_ref = agent(
        env=[{"name": name, "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]
    )
    for subject in (by_value, by_ref):
        [said] = refused(subject)
        assert said.startswith(f"spec.env[0] sets {name}, which would choose GPUs past")
        assert refused(subject, allow_gpu_visibility_env=True) == []


def test_variables_that_only_choose_among_visible_devices_stay_allowed() -> None:
    names = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "NVIDIA_TF32")
    env = [{"name": name, "value": "0"} for name in names]
    assert refused(agent(env=env)) == []


def test_a_gpu_agents_env_from_needs_a_prefix_that_cannot_spell_a_device_variable() -> None:
    sources = [
        {"configMapRef": {"name": "a"}},
        {"configMapRef": {"name": "b"}, "prefix": "NVIDIA_"},
        {"configMapRef": {"name": "c"}, "prefix": "N"},
        {"secretRef": {"name": "d"}, "prefix": "APP_"},
    ]
    gpu = agent(gpu={"count": 1}, envFrom=sources)
    assert [s.split(" has")[0] for s in refused(gpu)] == [
        "spec.envFrom[0]", "spec.envFrom[1]", "spec.envFrom[2]"
    ]  # fmt: skip
    assert refused(agent(envFrom=sources)) == []  # no GPU: void wins over envFrom


def test_an_agent_without_gpus_gets_no_nvidia_device_and_a_gpu_agent_keeps_the_plugins() -> None:
    def env(subject: AIAgent) -> dict[str, Any]:
        container = deployment.pod_spec(subject, RenderContext())["containers"][0]
        return {var["name"]: var.get("value") for var in container["env"]}

    assert env(agent())["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert "NVIDIA_VISIBLE_DEVICES" not in env(agent(gpu={"count": 1}))


# --- autoscaling -------------------------------------------------------------------------------


def scaler(**fields: Any) -> dict[str, Any]:
    return {"autoscaling": {"triggers": [{"scaler": {"type": "kafka", **fields}}]}}


def test_free_form_scalers_only_where_the_installation_allows_their_type() -> None:
    [said] = refused(agent(**scaler()))
    assert said.startswith("spec.autoscaling.triggers[0].scaler: KEDA scaler 'kafka' is not")
    assert refused(agent(**scaler()), allowed_scalers=("kafka",)) == []
    assert refused(agent(**scaler()), allowed_scalers=("*",)) == []
    assert refused(agent(**scaler()), allowed_scalers=("cron",)) != []
    off = {"autoscaling": {"enabled": False, **scaler()["autoscaling"]}}
    assert refused(agent(**off)) == [], "a disabled autoscaling renders no ScaledObject"
    builtin = {"autoscaling": {"triggers": [{"queueDepth": {"query": "sum(q)", "threshold": 1}}]}}
    assert refused(agent(**builtin)) == []


def test_cluster_trigger_authentication_only_where_allowed() -> None:
    cluster_wide = scaler(
        authenticationRef={"name": "shared", "kind": "ClusterTriggerAuthentication"}
    )
    [said] = refused(agent(**cluster_wide), allowed_scalers=("*",))
    assert "ClusterTriggerAuthentication 'shared'" in said
    loose = {"allowed_scalers": ("*",), "allow_cluster_trigger_authentication": True}
    assert refused(agent(**cluster_wide), **loose) == []
    local = scaler(authenticationRef={"name": "mine"})
    assert refused(agent(**local), allowed_scalers=("*",)) == []


def test_the_message_names_each_field_once_and_how_to_allow_it() -> None:
    subject = agent(
        namespace="kube-system",
        env=[{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}],
        securityContext={"allowPrivilegeEscalation": True},
    )
    text = policy.message(policy.violations(subject, Policy()))
    assert text.startswith("refused by the operator's policy: metadata.namespace: no agents")
    assert text.endswith(
        "(an installation can allow this with --allow-agents-in-system-namespaces"
        " / --pod-security-exception=<check> or --pod-security=baseline|privileged"
        " / --allow-gpu-visibility-env)"
    )
    many = agent(env=[{"name": f"NVIDIA_REQUIRE_{i}", "value": "x"} for i in range(20)])
    assert "(and 12 more)" in policy.message(policy.violations(many, Policy()))
