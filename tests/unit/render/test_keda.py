"""render/keda.py: the ScaledObject an agent gets, the settings layers it comes from, who owns
the Deployment's replicas, what KEDA's status becomes, and the committed keda/ folder.

Whether KEDA itself accepts these objects is tests/integration/test_autoscaling.py's question.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from agentfleet.api import constants as c
from agentfleet.api.config import RenderConfig
from agentfleet.api.models import AgentType, AIAgent
from agentfleet.render import deployment, keda
from agentfleet.render.children import desired_objects
from agentfleet.render.context import LiveDeployment, RenderContext
from tests.unit.conftest import EXAMPLES, ROOT, agent_from

KEDA_DIR = ROOT / "keda"
KEDA_HEADER = (
    "# Generated from manifests/examples by render/keda.py (`make keda`). Do not edit.\n"
    "# What the operator applies for the example agent, less the ownerReference to it.\n"
)
PLAN = {  # the rollout plan's ranges
    "orchestrator": (3, 3),
    "coding": (5, 100),
    "testing": (8, 200),
    "security": (6, 150),
    "compliance": (4, 100),
    "documentation": (3, 50),
    "discovery": (2, 20),
    "custom": (1, 10),
}


def scaled(autoscaling: dict[str, Any] | None = None, **spec: Any) -> AIAgent:
    spec = {"agentType": "coding", "image": "example.com/a:1", **spec}
    spec["autoscaling"] = {} if autoscaling is None else autoscaling
    return agent_from(spec, name="agent", namespace="ns")


def scaled_object(agent: AIAgent, config: RenderConfig | None = None) -> dict[str, Any]:
    [obj] = keda.render(agent, RenderContext(config or RenderConfig()))
    return obj


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [t.value for t in AgentType])
def test_each_agent_type_gets_the_rollout_plans_range(kind: str) -> None:
    spec = scaled_object(scaled(agentType=kind))["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == PLAN[kind]
    assert (spec["pollingInterval"], spec["cooldownPeriod"]) == (30, 300)
    [trigger] = spec["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metadata"]["threshold"] == "5"


def test_the_installation_overrides_the_type_and_the_agent_overrides_both() -> None:
    installation = keda.load_defaults(
        "coding: {minReplicas: 10, maxReplicas: 40, pollingIntervalSeconds: 15,"
        " triggers: [{requestsPerSecond: {threshold: 3}}]}"
    )
    config = RenderConfig(autoscaling_defaults=installation)
    spec = scaled_object(scaled(), config)["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["pollingInterval"]) == (
        10,
        40,
        15,
    )
    assert spec["triggers"][0]["metadata"]["threshold"] == "3"
    own = scaled({"maxReplicas": 20, "triggers": [{"queueDepth": {"query": "q", "threshold": 1}}]})
    spec = scaled_object(own, config)["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["pollingInterval"]) == (
        10,
        20,
        15,
    )
    assert [t["metadata"]["query"] for t in spec["triggers"]] == ["q"]  # lists replace
    # The installation's other types keep the built-in ranges.
    other = scaled_object(scaled(agentType="discovery"), config)["spec"]
    assert (other["minReplicaCount"], other["maxReplicaCount"]) == (2, 20)


@pytest.mark.parametrize(
    ("autoscaling", "expected"),
    [
        ({"minReplicas": 150}, (150, 150)),  # coding's default maximum is 100
        ({"maxReplicas": 3}, (3, 3)),  # ... and its default minimum 5
        ({"minReplicas": 7}, (7, 100)),
        ({"minReplicas": 2, "maxReplicas": 4}, (2, 4)),
    ],
)
def test_moving_one_end_past_the_other_moves_both(
    autoscaling: dict[str, Any], expected: tuple[int, int]
) -> None:
    spec = scaled_object(scaled(autoscaling))["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == expected


def test_disabled_autoscaling_renders_nothing_and_keeps_the_fixed_count() -> None:
    agent = scaled({"enabled": False, "minReplicas": 9}, replicas=2)
    assert keda.render(agent, RenderContext()) == []
    [dep] = deployment.render(agent, RenderContext())
    assert dep["spec"]["replicas"] == 2


# --- triggers ---------------------------------------------------------------------------------


def test_requests_per_second_queries_the_agents_own_pods_on_the_configured_prometheus() -> None:
    agent = scaled(
        {"triggers": [{"requestsPerSecond": {"threshold": 2.5, "activationThreshold": 0.5}}]}
    )
    [trigger] = scaled_object(agent, RenderConfig(prometheus_address="http://prom:9090"))["spec"][
        "triggers"
    ]
    assert trigger == {
        "type": "prometheus",
        "metricType": "AverageValue",
        "metadata": {
            "serverAddress": "http://prom:9090",
            # A tenancy-aware Prometheus front confines the query to the agent's namespace.
            "namespace": "ns",
            "query": 'sum(rate(http_requests_total{namespace="ns",'
            'pod=~"agent-[a-z0-9]+-[a-z0-9]+"}[2m]))',
            "threshold": "2.5",
            "activationThreshold": "0.5",
        },
    }


def test_the_pod_pattern_matches_this_agents_pods_only() -> None:
    import re

    pattern = re.search(r'pod=~"([^"]+)"', keda.pods_selector(scaled()))
    assert pattern is not None
    matches = re.compile(pattern.group(1)).fullmatch  # PromQL regexes are anchored
    assert matches("agent-7d9f8c6b5-xk2p9")
    assert not matches("agent-fast-7d9f8c6b5-xk2p9")  # another agent named agent-fast
    assert not matches("agent-7d9f8c6b5")


def test_queue_depth_is_the_users_query() -> None:
    agent = scaled({"triggers": [{"queueDepth": {"query": "sum(q)", "threshold": 10}}]})
    [trigger] = scaled_object(agent)["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metadata"]["query"] == "sum(q)"
    assert trigger["metadata"]["threshold"] == "10"
    assert "activationThreshold" not in trigger["metadata"]


@pytest.mark.parametrize("resource", ["cpu", "memory"])
def test_cpu_and_memory_measure_only_the_agent_container(resource: str) -> None:
    agent = scaled(
        {"triggers": [{resource: {"utilization": 70}}]},
        resources={"requests": {resource: "1"}},
    )
    [trigger] = scaled_object(agent)["spec"]["triggers"]
    assert trigger == {
        "type": resource,
        "metricType": "Utilization",
        "metadata": {"value": "70", "containerName": c.CONTAINER_NAME},
    }


def test_any_other_scaler_is_passed_through_with_its_authentication() -> None:
    scaler = {
        "type": "rabbitmq",
        "metadata": {"queueName": "jobs", "mode": "QueueLength", "value": "20"},
        "authenticationRef": {"name": "rabbit", "kind": "TriggerAuthentication"},
        "metricType": "AverageValue",
    }
    [trigger] = scaled_object(scaled({"triggers": [{"scaler": scaler}]}))["spec"]["triggers"]
    assert trigger == scaler


def test_optional_settings_render_only_when_set() -> None:
    plain = scaled_object(scaled())
    assert not {"idleReplicaCount", "fallback", "advanced"} & plain["spec"].keys()
    assert keda.PAUSED_ANNOTATION not in (plain["metadata"].get("annotations") or {})
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 600}}
    full = scaled_object(
        scaled(
            {
                "minReplicas": 1,
                "idleReplicas": 0,
                "paused": True,
                "fallback": {"failureThreshold": 3, "replicas": 6},
                "behavior": behavior,
                "triggers": [{"queueDepth": {"query": "q", "threshold": 1}}],
            }
        )
    )
    assert full["spec"]["idleReplicaCount"] == 0
    assert full["spec"]["fallback"] == {"failureThreshold": 3, "replicas": 6}
    assert full["spec"]["advanced"] == {"horizontalPodAutoscalerConfig": {"behavior": behavior}}
    assert full["metadata"]["annotations"] == {keda.PAUSED_ANNOTATION: "true"}


def test_the_scaled_object_is_the_agents_child_targeting_its_deployment() -> None:
    obj = scaled_object(scaled())
    assert (obj["apiVersion"], obj["kind"]) == ("keda.sh/v1alpha1", "ScaledObject")
    assert obj["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "agent",
    }
    [owner] = obj["metadata"]["ownerReferences"]
    assert owner["kind"] == c.KIND and owner["controller"] is True
    assert obj["metadata"]["labels"][c.LABEL_MANAGED_BY] == c.MANAGED_BY


# --- replicas ---------------------------------------------------------------------------------


def test_the_deployment_leaves_replicas_to_the_autoscaler() -> None:
    kinds = [o["kind"] for o in desired_objects(scaled(), RenderContext())]
    assert kinds == ["ServiceAccount", "Service", "Deployment", "ScaledObject"]
    [dep] = deployment.render(scaled(), RenderContext())
    assert "replicas" not in dep["spec"]
    assert keda.deployment_replicas(scaled(replicas=4)) is None
    assert keda.deployment_replicas(scaled({"enabled": False}, replicas=4)) == 4


@pytest.mark.parametrize(
    ("live", "expected"),
    [
        (None, None),  # nothing to hand over to yet: created first, without replicas
        (LiveDeployment(1, ()), 5),  # just created: nobody owns the default 1; coding's min
        (LiveDeployment(7, (c.FIELD_MANAGER,)), 7),  # ours: the live count, not the min
        (LiveDeployment(7, (c.FIELD_MANAGER, c.HANDOVER_FIELD_MANAGER)), 7),
        (LiveDeployment(5, (c.HANDOVER_FIELD_MANAGER,)), None),  # handed over already
        (LiveDeployment(12, ("kube-controller-manager",)), None),  # the HPA's now
        (LiveDeployment(0, ("keda",)), None),
        # KEDA scaled it to zero through the scale subresource, which omits 0: nobody owns it.
        (LiveDeployment(0, ()), None),
    ],
)
def test_replicas_are_handed_over_only_while_we_or_nobody_own_them(
    live: LiveDeployment | None, expected: int | None
) -> None:
    assert keda.handover_replicas(scaled(), RenderContext(deployment=live)) == expected


def test_nothing_is_handed_over_without_autoscaling() -> None:
    agent = scaled({"enabled": False})
    live = LiveDeployment(3, (c.FIELD_MANAGER,))
    assert keda.handover_replicas(agent, RenderContext(deployment=live)) is None


# --- what KEDA reports --------------------------------------------------------------------------


def keda_status(**conditions: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": "agent"},
        "spec": {"minReplicaCount": 5, "maxReplicaCount": 100},
        "status": {
            "hpaName": "keda-hpa-agent",
            "conditions": [
                {"type": kind, "status": s, "reason": r, "message": m}
                for kind, (s, r, m) in conditions.items()
            ],
        },
    }


def test_no_word_from_keda_yet_is_not_ready() -> None:
    ok, reason, message = keda.health({"metadata": {"name": "agent"}}) or (True, "", "")
    assert (ok, reason) == (False, c.Reason.WAITING_FOR_KEDA)
    assert "ScaledObject agent" in message
    unknown = keda_status(Ready=("Unknown", "", ""))
    assert keda.health(unknown) == keda.health({"metadata": {"name": "agent"}})


def test_ready_mirrors_kedas_reason_and_message_with_the_hpas_range() -> None:
    body = keda_status(
        Ready=("True", "ScaledObjectReady", "ScaledObject is defined correctly and is ready"),
        Active=("False", "ScalerNotActive", "Scaling is not performed because triggers are not"),
        Fallback=("False", "NoFallbackFound", "No fallbacks are active on this scaled object"),
        Paused=("False", "", ""),
    )
    assert keda.health(body) == (
        True,
        "ScaledObjectReady",
        "KEDA: ScaledObject is defined correctly and is ready (HPA keda-hpa-agent scales 5-100)",
    )
    active = keda_status(
        Ready=("True", "ScaledObjectReady", "ready"),
        Active=("True", "ScalerActive", "Scaling is performed because triggers are active"),
    )
    assert keda.health(active) == (
        True,
        "ScaledObjectReady",
        "KEDA: ready; Scaling is performed because triggers are active"
        " (HPA keda-hpa-agent scales 5-100)",
    )


@pytest.mark.parametrize(
    ("conditions", "reason", "said"),
    [
        (
            {"Ready": ("False", "ScaledObjectCheckFailed", "no scaler found for type: nope")},
            "ScaledObjectCheckFailed",
            "KEDA: no scaler found for type: nope",
        ),
        (
            {
                "Ready": ("True", "ScaledObjectReady", "ok"),
                "Paused": ("True", "ScaledObjectPaused", "ScaledObject is paused"),
            },
            "ScaledObjectPaused",
            "KEDA: ScaledObject is paused",
        ),
        (
            {
                "Ready": ("True", "ScaledObjectReady", "ok"),
                "Fallback": ("True", "FallbackExists", "At least one trigger is falling back"),
            },
            "FallbackExists",
            "KEDA: At least one trigger is falling back",
        ),
        (
            {"Ready": ("False", "not a valid reason!", "broken")},
            "NotReady",
            "KEDA: broken",
        ),
    ],
)
def test_not_ready_paused_and_fallback_are_not_ready(
    conditions: dict[str, tuple[str, str, str]], reason: str, said: str
) -> None:
    assert keda.health(keda_status(**conditions)) == (False, reason, said)


# --- the installation's defaults file ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("- coding", "must map agent types"),
        ("robots: {minReplicas: 1}", "unknown agent type 'robots'"),
        ("coding: {enabled: false}", "`enabled` is each agent's own choice"),
        ("coding: {minReplicas: 0, triggers: [{cpu: {utilization: 50}}]}", "minReplicas 0 needs"),
        ("coding: {minReplicas: 9, maxReplicas: 4}", "minReplicas must be <= maxReplicas"),
        ("coding: {idleReplicas: 1}", "idleReplicas can only be 0"),
        (
            "coding: {fallback: {failureThreshold: 1, replicas: 2},"
            " triggers: [{memory: {utilization: 50}}]}",
            "fallback needs a trigger other than cpu or memory",
        ),
        ("coding: {minReplicas: -1}", "greater than or equal to 0"),
    ],
)
def test_a_bad_defaults_file_is_refused_with_a_reason(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint.replace("(", r"\(")):
        keda.load_defaults(text)


def test_an_empty_defaults_file_changes_nothing() -> None:
    assert keda.load_defaults("") == {}


# --- keda/ ------------------------------------------------------------------------------------


def keda_folder() -> dict[str, str]:
    """keda/<agent>.yaml for every example agent with autoscaling."""
    files = {}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for body in yaml.safe_load_all(path.read_text()):
            if not body or body.get("kind") != c.KIND:
                continue
            name = body["metadata"]["name"]
            agent = agent_from(body["spec"], name=name, namespace=body["metadata"]["namespace"])
            for obj in keda.render(agent, RenderContext()):
                del obj["metadata"]["ownerReferences"]
                text = yaml.safe_dump(obj, sort_keys=False, width=100)
                files[f"{name}.yaml"] = KEDA_HEADER + text
    return files


def test_keda_folder_holds_the_examples_scaled_objects(request: pytest.FixtureRequest) -> None:
    expected = keda_folder()
    if request.config.getoption("--update-golden"):
        for stale in set(p.name for p in KEDA_DIR.glob("*.yaml")) - expected.keys():
            (KEDA_DIR / stale).unlink()
        for name, text in expected.items():
            (KEDA_DIR / name).write_text(text)
    committed = {p.name: p.read_text() for p in KEDA_DIR.glob("*.yaml")}
    assert committed == expected, "keda/ is stale: run `make keda`"
    assert len(expected) == 7, "every example agent type is autoscaled"
