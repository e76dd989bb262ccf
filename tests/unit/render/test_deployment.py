from typing import Any

from agentfleet.api import constants as c
from agentfleet.api.config import RenderConfig
from agentfleet.api.models import AIAgent
from agentfleet.render import deployment
from agentfleet.render.context import RenderContext
from tests.unit.conftest import agent_from

CTX = RenderContext()
# Without the placement ledger, the scheduler matches GPUs from the node labels.
NO_LEDGER = RenderContext(RenderConfig(gpu_placement=False))


def container(agent: AIAgent) -> dict[str, Any]:
    return deployment.render(agent, CTX)[0]["spec"]["template"]["spec"]["containers"][0]


def pod(agent: AIAgent, context: RenderContext = CTX) -> dict[str, Any]:
    return deployment.render(agent, context)[0]["spec"]["template"]["spec"]


def test_fixed_named_ports(minimal_agent: AIAgent) -> None:
    ports = {p["name"]: p["containerPort"] for p in container(minimal_agent)["ports"]}
    assert ports == {"http": 8080, "grpc": 9090, "http-metrics": 9091, "http-health": 8081}


def test_default_probes_hit_the_health_port(minimal_agent: AIAgent) -> None:
    agent_container = container(minimal_agent)
    assert agent_container["livenessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": "http-health",
        "scheme": "HTTP",
    }
    assert agent_container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_restricted_security_context_by_default(minimal_agent: AIAgent) -> None:
    sc = container(minimal_agent)["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert pod(minimal_agent)["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_labels_and_selector(minimal_agent: AIAgent) -> None:
    dep = deployment.render(minimal_agent, CTX)[0]
    assert dep["spec"]["selector"]["matchLabels"] == {
        c.LABEL_NAME: "aiagent",
        c.LABEL_INSTANCE: "demo",
    }
    template_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert template_labels[c.LABEL_AGENT_TYPE] == "coding"
    assert template_labels[c.LABEL_MANAGED_BY] == c.MANAGED_BY
    assert dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9091"


def test_parent_labels_are_not_copied_to_children() -> None:
    agent = AIAgent.from_body(
        {
            "metadata": {
                "name": "a",
                "namespace": "n",
                "labels": {
                    "app.kubernetes.io/instance": "argocd-app",
                    "argocd.argoproj.io/instance": "x",
                },
            },
            "spec": {"agentType": "coding", "image": "i"},
        }
    )
    labels = deployment.render(agent, CTX)[0]["metadata"]["labels"]
    assert labels[c.LABEL_INSTANCE] == "a"
    assert "argocd.argoproj.io/instance" not in labels


def test_owner_reference_is_the_controller(minimal_agent: AIAgent) -> None:
    (owner,) = deployment.render(minimal_agent, CTX)[0]["metadata"]["ownerReferences"]
    assert owner["controller"] is True and owner["kind"] == "AIAgent" and owner["uid"] == "0000-uid"


def test_gpu_becomes_extended_resource_and_vram_affinity() -> None:
    agent = agent_from({"agentType": "coding", "image": "i", "gpu": {"count": 1, "vram": "24Gi"}})
    assert container(agent)["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    terms = pod(agent, NO_LEDGER)["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    (term,) = terms["nodeSelectorTerms"]
    assert {"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": ["24575"]} in term[
        "matchExpressions"
    ]


def test_shared_gpu_requires_a_sharing_node() -> None:
    agent = agent_from({"agentType": "coding", "image": "i", "gpu": {"sharing": "shared"}})
    (term,) = pod(agent, NO_LEDGER)["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert {
        "key": "nvidia.com/gpu.sharing-strategy",
        "operator": "In",
        "values": ["time-slicing", "mps"],
    } in term["matchExpressions"]


def test_gpu_pods_wait_for_the_ledger_and_leave_a_failed_node_quickly() -> None:
    agent = agent_from({"agentType": "coding", "image": "i", "gpu": {"count": 1, "vram": "24Gi"}})
    spec = pod(agent)
    assert spec["schedulingGates"] == [{"name": c.SCHEDULING_GATE}]
    assert "affinity" not in spec, "the ledger chooses the node; the scheduler gets only that"
    assert {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 30,
    } in spec["tolerations"]
    labels = deployment.render(agent, CTX)[0]["spec"]["template"]["metadata"]["labels"]
    assert labels[c.LABEL_GPU] == "true"
    assert "schedulingGates" not in pod(agent, NO_LEDGER)


def test_cpu_agents_are_not_gated(minimal_agent: AIAgent) -> None:
    assert "schedulingGates" not in pod(minimal_agent)
    assert "tolerations" not in pod(minimal_agent)


def test_zero_gpus_means_no_gpu_constraints() -> None:
    agent = agent_from({"agentType": "coding", "image": "i", "gpu": {"count": 0}})
    assert "affinity" not in pod(agent)
    assert "resources" not in container(agent)


def test_user_env_overrides_builtin_by_name() -> None:
    agent = agent_from(
        {
            "agentType": "coding",
            "image": "i",
            "env": [{"name": "AGENTFLEET_AGENT_TYPE", "value": "special"}],
        }
    )
    env = container(agent)["env"]
    assert [e["value"] for e in env if e["name"] == "AGENTFLEET_AGENT_TYPE"] == ["special"]
    assert len({e["name"] for e in env}) == len(env)


def test_service_links_are_off_for_large_namespaces(minimal_agent: AIAgent) -> None:
    assert pod(minimal_agent)["enableServiceLinks"] is False
