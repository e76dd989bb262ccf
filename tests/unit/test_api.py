"""The HTTP API's pure parts: request bodies, how agents look to deploy-agent clients, and the
published schema. Every route against a real API server is in tests/integration/test_api.py."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from agentfleet.frontends.fleet import NodeView
from agentfleet.frontends.http import errors
from agentfleet.frontends.http import schemas as api
from agentfleet.frontends.http.app import ApiSettings, create_app
from agentfleet.frontends.http.auth import MAX_TOKEN_BYTES, TokenReviews
from agentfleet.frontends.http.limits import Slots, TooBusy
from agentfleet.frontends.http.schemas import DeployRequest, SpawnRequest
from agentfleet.kube.client import Target
from agentfleet.placement import GPURow


def agent(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "yolo", "namespace": "vision", "generation": 1},
        "spec": {"agentType": "custom", "image": "tidybot/yolo:0.2.0", "replicas": 2},
        "status": {"observedGeneration": 1, **status},
    }


READY = {
    "type": "Ready",
    "status": "True",
    "reason": "Available",
    "message": "2 of 2 replicas available",
    "lastTransitionTime": "2020-01-01T00:00:00Z",
}


def test_a_ready_agent_is_a_healthy_service_with_its_service_dns_host() -> None:
    body = agent(
        conditions=[READY],
        readyReplicas=2,
        endpoints={"http": "yolo.vision.svc.cluster.local:8080"},
    )
    view = api.service_view(body, gpu=3)
    assert view.host == "http://yolo.vision.svc.cluster.local:8080"
    assert (view.status, view.port, view.gpu, view.gpus, view.vram) == ("healthy", 8080, 3, 0, None)
    assert view.uptime > 5 * 365 * 86400  # since the Ready transition
    assert (view.replicas, view.ready_replicas, view.image) == (2, 2, "tidybot/yolo:0.2.0")


@pytest.mark.parametrize(
    ("conditions", "extra", "status"),
    [
        ([], {}, "starting"),
        ([{**READY, "status": "False", "reason": "Progressing"}], {}, "starting"),
        ([{**READY, "reason": "ScaledToZero"}], {}, "scaled-to-zero"),
        ([{"type": "Stalled", "status": "True", "reason": "ApplyFailed"}], {}, "unhealthy"),
        (
            [{"type": "Placed", "status": "False", "reason": "InsufficientVRAM"}],
            {},
            "unschedulable",
        ),
        ([READY], {"deletionTimestamp": "2020-01-01T00:00:00Z"}, "deleting"),
    ],
)
def test_service_status(
    conditions: list[dict[str, Any]], extra: dict[str, Any], status: str
) -> None:
    body = agent(conditions=conditions)
    body["metadata"].update(extra)
    assert api.service_status(body) == status
    if status == "starting":
        assert api.service_view(body).uptime == 0  # uptime counts from Ready


def test_same_spec_fills_in_defaults_before_comparing() -> None:
    stored = {"spec": {"agentType": "custom", "image": "i:1", "replicas": 1, "gpu": {"count": 1}}}
    assert api.same_spec(stored, {"agentType": "custom", "image": "i:1", "gpu": {}})
    assert not api.same_spec(stored, {"agentType": "custom", "image": "i:2", "gpu": {}})
    assert not api.same_spec({"spec": {"image": 3}}, {"agentType": "custom", "image": "i:1"})


def test_deploy_request_takes_the_deploy_agents_fields() -> None:
    request = DeployRequest.model_validate(
        {
            "name": "yolo-service",
            "image": "tidybot/yolo-service:0.2.0",
            "port": 8010,
            "gpu": True,
            "vram_gb": 8,
            "env": {"MODEL": "yoloe-11l-seg.pt"},
            "volumes": ["models:/app/models"],
            "health": "/health",
            "ready_timeout": 120,
        }
    )
    assert request.vram_gb == 8 and request.ready_timeout == 120


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"image": "i"}, "name"),
        ({"name": "Yolo", "image": "i"}, "name"),
        ({"name": "a", "image": "has space"}, "image"),
        ({"name": "a", "image": "i", "port": 70000}, "port"),
        ({"name": "a", "image": "i", "vram_gb": -1}, "vram_gb"),
        ({"name": "a", "image": "i", "env": {"1BAD": "x"}}, "env"),
        ({"name": "a", "image": "i", "volumes": ["models"]}, "volumes"),
        ({"name": "a", "image": "i", "health": "health"}, "health"),
        ({"name": "a", "image": "i", "ready_timeout": "soon"}, "ready_timeout"),
        ({"name": "a", "image": "i", "replicas": 3}, "replicas"),
    ],
)
def test_bad_deploy_bodies_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        DeployRequest.model_validate(body)
    assert caught.value.errors()[0]["loc"][0] == field


def test_text_that_utf8_cannot_encode_is_refused_naming_the_field() -> None:
    body = json.loads('{"name": "a", "image": "i", "env": {"A": "\\ud800"}}')
    with pytest.raises(ValidationError, match=r"env\.A: must be Unicode text"):
        DeployRequest.model_validate(body)


def test_spawn_request_is_hypercores() -> None:
    request = SpawnRequest.model_validate(
        {
            "cores": 2,
            "memory": 2048,
            "image_ref": "docker.io/my-org/market-intelligence-agent:latest",
            "ports": {"8080": 8080},
            "env": ["API_KEY=secret", "LOG_LEVEL=info"],
        }
    )
    assert request.name is None and request.agent_type.value == "custom"
    for bad in ({"ports": {"http": 8080}}, {"ports": {"8080": 0}}, {"env": ["=x"]}):
        with pytest.raises(ValidationError):
            SpawnRequest.model_validate({**request.model_dump(), **bad})


def test_unprocessable_has_fastapis_shape() -> None:
    error = errors.unprocessable("volumes[1]", "'x' is not NAME:/PATH[:ro]")
    assert error.status_code == 422
    assert error.detail == [
        {
            "loc": ["body", "volumes", "1"],
            "msg": "'x' is not NAME:/PATH[:ro]",
            "type": "value_error",
        }
    ]
    assert errors.unprocessable("", "refused").detail[0]["loc"] == ["body"]
    assert errors.body_field("spec.env.0.name", errors.DEPLOY_FIELDS) == "env"
    assert errors.body_field("spec.resources.requests.cpu", errors.SPAWN_FIELDS) == "cores"


def test_gpu_rows_in_the_deploy_agents_shape() -> None:
    row = GPURow(
        node="gpu-l4-timeslice-1",
        index=0,
        product="NVIDIA-L4-SHARED",
        sharing="time-slicing",
        total_mib=23034,
        committed_mib=8192,
        reported_used_mib=0,
        free_mib=14842,
        agents=("vision/yolo",),
        pods=2,
        state="Ready",
    )
    assert api.gpu_view(row).model_dump() == {
        "id": 0,
        "name": "NVIDIA-L4-SHARED",
        "node": "gpu-l4-timeslice-1",
        "vram_total_gb": 22.5,
        "vram_used_gb": 8.0,
        "vram_free_gb": 14.5,
        "services": ["vision/yolo"],
        "sharing": "time-slicing",
        "state": "Ready",
    }


def test_node_records_have_the_registration_apis_shape() -> None:
    view = NodeView(
        name="n",
        uid="u",
        ready="False",
        address="10.0.0.1",
        os="linux",
        arch="amd64",
        cpu="16",
        memory_mib=65536,
        gpus=[],
        heartbeat_age=12.0,
        placement="NotReady: kubelet stopped posting",
    )
    record = api.node_record(view)
    assert (record.id, record.status, record.ip) == ("u", "offline", "10.0.0.1")
    assert record.capabilities.mem_mb == 65536 and record.heartbeat_age_seconds == 12.0
    assert record.last_seen is not None


@pytest.fixture
def offline_client(tmp_path: Path) -> Iterator[TestClient]:
    """The app with a kubeconfig whose server is never contacted by these requests."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "x", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    with TestClient(create_app(ApiSettings(Target(kubeconfig=str(path))))) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/health"),
        ("GET", "/services"),
        ("GET", "/services/yolo"),
        ("POST", "/deploy"),
        ("POST", "/stop"),
        ("GET", "/gpus"),
        ("POST", "/spawn"),
        ("GET", "/api/v1/nodes"),
    ],
)
def test_every_route_needs_a_bearer_token(
    offline_client: TestClient, method: str, path: str
) -> None:
    response = offline_client.request(method, path, json={})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_the_openapi_schema_documents_auth_and_errors(offline_client: TestClient) -> None:
    schema = offline_client.get("/openapi.json").json()
    assert set(schema["paths"]) == {
        "/health",
        "/services",
        "/services/{name}",
        "/deploy",
        "/stop",
        "/gpus",
        "/spawn",
        "/api/v1/nodes",
    }
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            assert {"401", "403"} <= set(operation["responses"]), path
            assert operation["security"] == [{"HTTPBearer": []}], path
    deploy = schema["paths"]["/deploy"]["post"]["responses"]
    assert {"200", "409", "422", "504"} <= set(deploy)
    env = schema["components"]["schemas"]["DeployRequest"]["properties"]["env"]
    assert env["additionalProperties"] is False  # keys must match the env-name pattern
    assert offline_client.get("/healthz").json() == {"status": "ok"}


# --- what bounds the API's cost, and what a failure tells a caller --------------------------


async def test_token_reviews_cost_one_review_per_bad_token_and_stay_bounded() -> None:
    reviewed: list[str] = []

    async def review(token: str) -> dict[str, Any] | None:
        reviewed.append(token)
        return {"username": token} if token.startswith("good") else None

    reviews = TokenReviews(review, seconds=60, size=100)
    for i in range(1000):
        assert await reviews.user(f"bad-{i}") is None
    assert len(reviewed) == 1000  # one review each, never more
    assert len(reviews.answers) == 100  # a flood of made-up tokens does not grow memory
    assert all(len(key) == 32 for key in reviews.answers)  # a digest, not the token
    reviewed.clear()
    for _ in range(10):
        assert await reviews.user("bad-999") is None
    assert reviewed == []  # answered from the cache
    assert await reviews.user("x" * (MAX_TOKEN_BYTES + 1)) is None
    assert await reviews.user("") is None
    assert reviewed == []  # no review for what cannot be a token
    assert await reviews.user("good-1") == {"username": "good-1"}
    reviews.seconds = 0  # expired answers are asked again, once per request
    assert await reviews.user("good-1") == {"username": "good-1"}
    assert reviewed == ["good-1", "good-1"]


def test_slots_refuse_beyond_the_cap_with_retry_after() -> None:
    slots = Slots(1, "deploys", retry_after=5)
    with slots.take():
        with pytest.raises(TooBusy) as busy, slots.take():
            pass
        assert busy.value.status_code == 429 and busy.value.headers == {"Retry-After": "5"}
    with slots.take():
        assert slots.held == 1
    assert slots.held == 0


def offline_app(tmp_path: Path, **settings: Any) -> Any:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "x", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    return create_app(ApiSettings(Target(kubeconfig=str(path)), **settings))


def test_bodies_over_the_limit_are_refused_before_anything_reads_them(tmp_path: Path) -> None:
    with TestClient(offline_app(tmp_path, max_body_bytes=1000)) as client:
        declared = client.post("/deploy", content=b"{" + b" " * 1000 + b"}")
        assert declared.status_code == 413
        assert declared.json() == {"detail": "the request body is larger than 1000 bytes"}

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            for _ in range(11):
                yield b" " * 100

        assert client.post("/deploy", content=chunks()).status_code == 413
        # Within the limit the request goes on (to the token check).
        assert client.post("/deploy", json={"name": "a", "image": "i"}).status_code == 401


def test_a_server_error_answers_a_request_id_and_nothing_internal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The API server cannot be reached: the TokenReview fails inside the API (a 502: the
    API's upstream did not answer)."""
    with TestClient(offline_app(tmp_path), raise_server_exceptions=False) as client:
        response = client.get("/services", headers={"Authorization": "Bearer some-token"})
    assert response.status_code == 502
    rid = response.headers["x-request-id"]
    assert response.json() == {
        "detail": f"the API could not complete this request (request id {rid})"
    }
    assert "127.0.0.1" not in response.text and "uvicorn" not in str(response.headers)
    logged = [r.getMessage() for r in caplog.records if rid in r.getMessage()]
    assert logged and "127.0.0.1:9" in logged[0]  # the reason is in the API's log, by its id


def test_the_api_command_wants_tls_unless_insecure() -> None:
    from typer.testing import CliRunner

    from agentfleet.main import app

    runner = CliRunner()
    refused = runner.invoke(app, ["api"])
    assert refused.exit_code == 2
    assert "--tls-cert-file, --tls-private-key-file, --client-ca-file required" in refused.output
    http_only = runner.invoke(app, ["api", "--grpc-port", "0"])
    assert http_only.exit_code == 2 and "--client-ca-file" not in http_only.output
    missing = runner.invoke(
        app,
        ["api", "--grpc-port", "0", "--tls-cert-file", "/nonexistent.crt",
         "--tls-private-key-file", "/nonexistent.key"],
    )  # fmt: skip
    assert (
        missing.exit_code == 2 and "cannot read --tls-cert-file /nonexistent.crt" in missing.output
    )


def test_the_operator_process_never_imports_grpc() -> None:
    """`agentfleet run` loads main.py and the runtime: grpc (its RSS) only for `agentfleet api`."""
    probe = (
        "import sys, agentfleet.main, agentfleet.runtime.runner; "
        "before = any(m.split('.')[0] == 'grpc' for m in sys.modules); "
        "import agentfleet.frontends.serve; "
        "print(before, any(m.split('.')[0] == 'grpc' for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "True"]
