from agentfleet.api.models import AIAgent
from agentfleet.render import service, serviceaccount
from agentfleet.render.context import RenderContext
from tests.unit.conftest import agent_from

CTX = RenderContext()


def test_service_has_four_named_ports_with_app_protocols(minimal_agent: AIAgent) -> None:
    (svc,) = service.render(minimal_agent, CTX)
    ports = [
        (p["name"], p["port"], p["targetPort"], p["appProtocol"]) for p in svc["spec"]["ports"]
    ]
    assert ports == [
        ("http", 8080, "http", "http"),
        ("grpc", 9090, "grpc", "grpc"),
        ("http-metrics", 9091, "http-metrics", "http"),
        ("http-health", 8081, "http-health", "http"),
    ]
    assert svc["spec"]["type"] == "ClusterIP"


def test_endpoints_are_stable_dns_names(minimal_agent: AIAgent) -> None:
    assert service.endpoints(minimal_agent, "cluster.local") == {
        "http": "demo.team-a.svc.cluster.local:8080",
        "grpc": "demo.team-a.svc.cluster.local:9090",
        "metrics": "demo.team-a.svc.cluster.local:9091",
        "health": "demo.team-a.svc.cluster.local:8081",
    }


def test_service_account_per_agent_unless_one_is_named(minimal_agent: AIAgent) -> None:
    assert serviceaccount.render(minimal_agent, CTX)[0]["metadata"]["name"] == "demo"
    byo = agent_from({"agentType": "coding", "image": "i", "serviceAccountName": "shared"})
    assert serviceaccount.render(byo, CTX) == []
