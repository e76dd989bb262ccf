"""The deploy-agent-compatible HTTP API against a real API server, with the operator running.

The API runs as a real process with the least-privilege identity of api_process.py (HTTPS
by default; the fuzz run and the 5xx test use --insecure), and every request
carries a real ServiceAccount token (`kubectl create token`): authentication by TokenReview
and authorization by SubjectAccessReview are the API server's own, not simulated.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentfleet.api.models import AgentSpec
from tests.conftest import OUTPUT, Cluster, Operator, eventually
from tests.integration.api_process import (
    AUDIENCE,
    ApiProcess,
    Certificates,
    apiserver_metric,
    caller_tokens,
    cleanup_namespace,
    make_certificates,
    start_api,
)

pytestmark = pytest.mark.cluster

# The callers: what each may do in the test namespace (and cluster-wide for `ops`).
CALLERS = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: deployer, namespace: NS}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: viewer, namespace: NS}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: nobody, namespace: NS}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: ops, namespace: NS}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: deploy-agents, namespace: NS}
rules: [{apiGroups: [agentfleet.io], resources: [aiagents], verbs: [get, list, create, delete]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: view-agents, namespace: NS}
rules: [{apiGroups: [agentfleet.io], resources: [aiagents], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: deployer, namespace: NS}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: deploy-agents}
subjects:
  - {kind: ServiceAccount, name: deployer, namespace: NS}
  - {kind: ServiceAccount, name: ops, namespace: NS}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: viewer, namespace: NS}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: view-agents}
subjects: [{kind: ServiceAccount, name: viewer, namespace: NS}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: NS-fleet-inventory}
rules: [{apiGroups: [""], resources: [nodes, pods], verbs: [list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: NS-fleet-inventory}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: NS-fleet-inventory}
subjects: [{kind: ServiceAccount, name: ops, namespace: NS}]
"""


@dataclass
class Api:
    url: str
    namespace: str
    tokens: dict[str, str]
    server: ApiProcess

    def call(
        self, method: str, path: str, who: str | None = "deployer", **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        headers |= kwargs.pop("headers", {})
        certificates = self.server.certificates
        verify = certificates.ssl_context() if certificates else True
        return httpx.request(
            method, self.url + path, headers=headers, timeout=120, verify=verify, **kwargs
        )


@pytest.fixture(scope="module")
def certificates() -> Certificates:
    return make_certificates(OUTPUT / "api-pki")


@pytest.fixture(scope="module")
def api(cluster: Cluster, operator: Operator, certificates: Certificates) -> Iterator[Api]:
    """The API over HTTPS (its default), with at most one POST /deploy at a time."""
    namespace = f"api-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("apply", "-f", "-", input=CALLERS.replace("NS", namespace))
    tokens = caller_tokens(cluster, namespace, "deployer", "viewer", "nobody", "ops")
    tokens["garbage"] = "not-a-token"
    server = start_api(
        cluster, namespace, "test-api", "--max-wait", "30", "--max-deploy-waits", "1",
        certificates=certificates,
    )  # fmt: skip
    try:
        yield Api(server.url, namespace, tokens, server)
    finally:
        server.stop()
        cleanup_namespace(cluster, namespace)


def agents_in(cluster: Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    items = json.loads(cluster.kubectl("get", "aia", "-n", namespace, "-o", "json").stdout)
    return {item["metadata"]["name"]: item for item in items["items"]}


ROUTES = [
    ("GET", "/health", None),
    ("GET", "/services", None),
    ("GET", "/services/anything", None),
    ("POST", "/deploy", {"name": "x", "image": "i:1"}),
    ("POST", "/stop", {"name": "x"}),
    ("GET", "/gpus", None),
    ("POST", "/spawn", {"cores": 1, "memory": 64, "image_ref": "i:1"}),
    ("GET", "/api/v1/nodes", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_route_refuses_missing_invalid_and_unauthorized_tokens(
    cluster: Cluster, api: Api, method: str, path: str, body: Any
) -> None:
    assert api.call(method, path, who=None, json=body).status_code == 401
    assert api.call(method, path, who="garbage", json=body).status_code == 401
    forbidden = api.call(method, path, who="nobody", json=body)
    assert forbidden.status_code == 403
    assert f"system:serviceaccount:{api.namespace}:nobody may not" in forbidden.json()["detail"]
    assert "x" not in agents_in(cluster, api.namespace)  # a refused deploy created nothing


def test_a_viewer_may_read_but_not_deploy_or_stop(api: Api) -> None:
    assert api.call("GET", "/services", who="viewer").status_code == 200
    assert api.call("GET", "/health", who="viewer").json()["gpus"] is None  # may not list nodes
    refused = api.call("POST", "/deploy", who="viewer", json={"name": "v", "image": "i:1"})
    assert refused.status_code == 403
    assert "may not create aiagents.agentfleet.io in namespace" in refused.json()["detail"]
    assert api.call("POST", "/stop", who="viewer", json={"name": "v"}).status_code == 403
    # The namespace query is authorized too: rights in one namespace say nothing of another.
    other = api.call("GET", "/services", who="viewer", params={"namespace": "kube-system"})
    assert other.status_code == 403


def test_deploy_is_idempotent_and_stop_removes_the_agent(cluster: Cluster, api: Api) -> None:
    manifest = {
        "name": "yolo-service",
        "image": "tidybot/yolo-service:0.2.0",
        "port": 8010,
        "env": {"MODEL": "yoloe-11l-seg.pt"},
        "health": "/health",
        "ready_timeout": 90,
    }
    first = api.call("POST", "/deploy", json=manifest)
    assert first.status_code == 200, first.text
    answer = first.json()
    host = f"http://yolo-service.{api.namespace}.svc.cluster.local:8080"
    assert answer | {"warnings": []} == {
        "ok": True,
        "name": "yolo-service",
        "host": host,
        "gpu": None,
        "status": "healthy",
        "already_running": False,
        "warnings": [],
        "error": None,
        "reason": None,
    }
    assert any("port 8010" in w for w in answer["warnings"])
    stored = agents_in(cluster, api.namespace)["yolo-service"]
    uid = stored["metadata"]["uid"]

    started = time.monotonic()
    second = api.call("POST", "/deploy", json=manifest)
    assert second.status_code == 200
    assert second.json()["already_running"] is True and second.json()["host"] == host
    assert time.monotonic() - started < 5  # answered at once, no second rollout
    assert agents_in(cluster, api.namespace)["yolo-service"]["metadata"]["uid"] == uid

    services = api.call("GET", "/services").json()
    assert [s["name"] for s in services] == ["yolo-service"]
    one = api.call("GET", "/services/yolo-service").json()
    assert one["status"] == "healthy" and one["host"] == host and one["port"] == 8080
    assert one["image"] == "tidybot/yolo-service:0.2.0" and one["ready_replicas"] == 1
    health = api.call("GET", "/health").json()
    assert health["status"] == "ok" and health["services_running"] == 1

    changed = api.call("POST", "/deploy", json={**manifest, "image": "tidybot/yolo-service:0.3"})
    assert changed.status_code == 409
    assert changed.json()["reason"] == "Conflict" and changed.json()["ok"] is False

    stopped = api.call("POST", "/stop", json={"name": "yolo-service"})
    assert stopped.status_code == 200 and stopped.json() == {"ok": True, "name": "yolo-service"}
    eventually(lambda: "yolo-service" not in agents_in(cluster, api.namespace), timeout=30)
    assert api.call("GET", "/services/yolo-service").status_code == 404
    again = api.call("POST", "/stop", json={"name": "yolo-service"})
    assert again.status_code == 404 and "not deployed" in again.json()["detail"]


def test_get_service_answers_404_when_not_deployed(api: Api) -> None:
    missing = api.call("GET", "/services/never-deployed")
    assert missing.status_code == 404
    assert missing.json() == {"detail": f"never-deployed is not deployed in {api.namespace}"}
    assert api.call("GET", "/services/Not_A_Name").status_code == 422


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"image": "i:1"}, ["body", "name"]),
        ({"name": "Bad_Name", "image": "i:1"}, ["body", "name"]),
        ({"name": "bad-image", "image": "two words"}, ["body", "image"]),
        ({"name": "bad-port", "image": "i:1", "port": 0}, ["body", "port"]),
        ({"name": "bad-vram", "image": "i:1", "gpu": True, "vram_gb": -8}, ["body", "vram_gb"]),
        ({"name": "bad-env", "image": "i:1", "env": {"1X": "y"}}, ["body", "env", "1X", "[key]"]),
        ({"name": "bad-timeout", "image": "i:1", "ready_timeout": "soon"},
         ["body", "ready_timeout"]),
        ({"name": "extra", "image": "i:1", "replicas": 2}, ["body", "replicas"]),
        ({"name": "twice", "image": "i:1", "volumes": ["a:/d", "b:/d"]}, ["body", "volumes", "1"]),
    ],
)  # fmt: skip
def test_bad_deploy_bodies_are_refused_naming_the_field_and_create_nothing(
    cluster: Cluster, api: Api, body: dict[str, Any], field: list[str]
) -> None:
    response = api.call("POST", "/deploy", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == field
    assert body.get("name", "") not in agents_in(cluster, api.namespace)


def test_a_deploy_not_ready_in_time_answers_what_it_waits_for(cluster: Cluster, api: Api) -> None:
    # Its volume's claim does not exist, so its Pod is never scheduled.
    manifest = {"name": "stuck", "image": "i:1", "volumes": ["no-claim:/data"], "ready_timeout": 3}
    started = time.monotonic()
    response = api.call("POST", "/deploy", json=manifest)
    assert 3 <= time.monotonic() - started < 20
    assert response.status_code == 504, response.text
    answer = response.json()
    assert answer["ok"] is False and answer["status"] == "starting"
    assert answer["error"] == "stuck is not Ready after 3 s: 0 of 1 replicas available"
    assert answer["already_running"] is False
    # It stays (a later deploy may find it Ready) and the same request is idempotent.
    assert "stuck" in agents_in(cluster, api.namespace)
    again = api.call("POST", "/deploy", json={**manifest, "ready_timeout": 1})
    assert again.status_code == 504 and again.json()["already_running"] is True
    assert api.call("POST", "/stop", json={"name": "stuck"}).status_code == 200


def test_a_deploy_no_gpu_can_take_is_refused_and_leaves_nothing(cluster: Cluster, api: Api) -> None:
    manifest = {"name": "huge", "image": "i:1", "gpu": True, "vram_gb": 1000, "ready_timeout": 30}
    response = api.call("POST", "/deploy", json=manifest)
    assert response.status_code == 409, response.text
    answer = response.json()
    assert answer["ok"] is False and answer["reason"] == "InsufficientVRAM"
    assert answer["status"] == "unschedulable" and answer["host"] is None
    assert "huge" not in agents_in(cluster, api.namespace)
    deployments = cluster.kubectl("get", "deployments", "-n", api.namespace, "-o", "name")
    assert "huge" not in deployments.stdout


def test_a_gpu_deploy_reports_its_gpu_and_is_booked_in_gpus(cluster: Cluster, api: Api) -> None:
    manifest = {"name": "vision", "image": "i:1", "gpu": True, "vram_gb": 40, "ready_timeout": 60}
    try:
        response = api.call("POST", "/deploy", json=manifest)
        assert response.status_code == 200, response.text
        assert isinstance(response.json()["gpu"], int)
        gpus = api.call("GET", "/gpus", who="ops").json()
        holders = [g for g in gpus if f"{api.namespace}/vision" in g["services"]]
        assert len(holders) == 1 and holders[0]["vram_used_gb"] >= 40
    finally:
        api.call("POST", "/stop", json={"name": "vision"})


def test_spawn_creates_an_agent_from_hypercores_request(cluster: Cluster, api: Api) -> None:
    request = {
        "cores": 2,
        "memory": 2048,
        "image_ref": "docker.io/my-org/market-intelligence-agent:latest",
        "ports": {"8080": 8080},
        "env": ["API_KEY=secret", "LOG_LEVEL=info"],
    }
    response = api.call("POST", "/spawn", json=request)
    assert response.status_code == 201, response.text
    answer = response.json()
    name = answer["id"]
    assert name.startswith("market-intelligence-agent-") and answer["name"] == name
    assert answer["host"] == f"http://{name}.{api.namespace}.svc:8080"
    assert answer["warnings"] == []
    spec = agents_in(cluster, api.namespace)[name]["spec"]
    assert spec["resources"] == {
        "requests": {"cpu": "2", "memory": "2048Mi"},
        "limits": {"memory": "2048Mi"},
    }
    assert spec["env"] == [
        {"name": "API_KEY", "value": "secret"},
        {"name": "LOG_LEVEL", "value": "info"},
    ]

    def healthy() -> None:
        assert api.call("GET", f"/services/{name}").json()["status"] == "healthy"

    eventually(healthy, timeout=60, what=f"{name} healthy")
    assert api.call("POST", "/stop", json={"name": name}).status_code == 200


def test_nodes_and_gpus_for_a_caller_who_may_list_nodes(api: Api) -> None:
    nodes = api.call("GET", "/api/v1/nodes", who="ops")
    assert nodes.status_code == 200
    by_name = {node["name"]: node for node in nodes.json()}
    assert {"cpu-1", "gpu-a100-1"} <= set(by_name)
    a100 = by_name["gpu-a100-1"]
    assert a100["status"] == "online" and a100["capabilities"]["cpu_count"] == "96"
    assert a100["capabilities"]["gpus"][0]["count"] == 8
    assert a100["capabilities"]["mem_mb"] == 1152 * 1024

    gpus = api.call("GET", "/gpus", who="ops")
    assert gpus.status_code == 200
    rows = gpus.json()
    a100_rows = [g for g in rows if g["node"] == "gpu-a100-1"]
    assert [g["id"] for g in a100_rows] == list(range(8))
    assert {g["vram_total_gb"] for g in a100_rows} == {80.0}
    assert all(g["vram_used_gb"] + g["vram_free_gb"] == g["vram_total_gb"] for g in rows)
    health = api.call("GET", "/health", who="ops").json()
    with_gpus = [
        n["capabilities"]["gpus"][0] for n in by_name.values() if n["capabilities"]["gpus"]
    ]
    assert health["gpus"] == sum(gpu["count"] for gpu in with_gpus)
    assert api.call("GET", "/gpus", who="deployer").status_code == 403


# --- the API's own boundary: TLS, audiences, bounded cost, nothing internal in a 5xx ---------


def test_tls_is_the_default_and_plain_http_gets_nothing(api: Api) -> None:
    assert api.url.startswith("https://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(api.url.replace("https://", "http://") + "/healthz", timeout=10)
    assert api.call("GET", "/services").status_code == 200


def test_tokens_for_another_audience_are_refused(cluster: Cluster, api: Api) -> None:
    ns = api.namespace
    other = cluster.kubectl("create", "token", "deployer", "-n", ns, "--audience=other-service")
    for_the_api_server = cluster.kubectl("create", "token", "deployer", "-n", ns)
    for token in (other.stdout.strip(), for_the_api_server.stdout.strip()):
        api.tokens["elsewhere"] = token
        refused = api.call("GET", "/services", who="elsewhere")
        assert refused.status_code == 401, refused.text
    assert api.call("GET", "/services", who="deployer").status_code == 200  # audience AUDIENCE
    assert AUDIENCE == "agentfleet-api"


def test_bad_tokens_cost_at_most_one_token_review_each(cluster: Cluster, api: Api) -> None:
    def reviews() -> float:
        return apiserver_metric(cluster, "apiserver_request_total", resource="tokenreviews")

    before = reviews()
    for i in range(20):
        api.tokens["bad"] = f"not-a-token-{i}-{uuid.uuid4().hex}"
        assert api.call("GET", "/services", who="bad").status_code == 401
    api.tokens["bad"] = "the-same-bad-token"
    for _ in range(10):
        assert api.call("GET", "/services", who="bad").status_code == 401
    for _ in range(10):
        assert api.call("GET", "/services", who=None).status_code == 401  # no token: no review
    # 20 distinct bad tokens and one repeated: 21 reviews (nothing else here reviews tokens).
    assert reviews() - before == 21


def test_bodies_over_the_limit_are_refused_and_create_nothing(cluster: Cluster, api: Api) -> None:
    limit = 1024 * 1024  # the default --max-body-bytes
    declared = api.call(
        "POST", "/deploy", json={"name": "big", "image": "i:1", "env": {"X": "a" * limit}}
    )
    assert declared.status_code == 413, declared.text
    assert declared.json() == {"detail": f"the request body is larger than {limit} bytes"}

    def chunks() -> Iterator[bytes]:  # no Content-Length: the API counts what arrives
        yield b'{"name": "big", "image": "i:1", "env": {"X": "'
        for _ in range(16):
            yield b"a" * (limit // 16)
        yield b'"}}'

    chunked = api.call(
        "POST", "/deploy", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert chunked.status_code == 413, chunked.text
    assert "big" not in agents_in(cluster, api.namespace)


def test_deploys_beyond_the_cap_are_answered_429_with_retry_after(
    cluster: Cluster, api: Api
) -> None:
    """The fixture's API allows one POST /deploy at a time (--max-deploy-waits 1)."""
    waiting = {
        "name": "waiting",
        "image": "i:1",
        "volumes": ["no-claim:/data"],
        "ready_timeout": 60,
    }
    first: dict[str, httpx.Response] = {}
    thread = threading.Thread(
        target=lambda: first.update(r=api.call("POST", "/deploy", json=waiting))
    )
    thread.start()
    try:
        eventually(lambda: "waiting" in agents_in(cluster, api.namespace), timeout=30)
        busy = api.call("POST", "/deploy", json={"name": "second", "image": "i:1"})
        assert busy.status_code == 429, busy.text
        assert busy.headers["retry-after"] == "5"
        assert "second" not in agents_in(cluster, api.namespace)
    finally:
        api.call("POST", "/stop", json={"name": "waiting"})  # ends the first deploy's wait
        thread.join(timeout=90)
    assert first["r"].status_code != 429
    again = api.call("POST", "/deploy", json={"name": "second", "image": "i:1", "ready_timeout": 0})
    assert again.status_code in (200, 504), again.text  # the slot is free again
    assert api.call("POST", "/stop", json={"name": "second"}).status_code == 200


def test_a_5xx_says_nothing_of_the_apis_identity_or_its_error(cluster: Cluster, api: Api) -> None:
    """An API whose own identity may not read AIAgents (plain HTTP: --insecure, local use)."""
    crippled = start_api(cluster, api.namespace, "crippled-api", identity="agentfleet-api-crippled")
    try:
        assert crippled.url.startswith("http://")
        token = {"Authorization": f"Bearer {api.tokens['deployer']}"}
        response = httpx.get(crippled.url + "/services", headers=token, timeout=30)
        assert response.status_code == 502
        rid = response.headers["x-request-id"]
        assert response.json() == {
            "detail": f"the API could not complete this request (request id {rid})"
        }
        assert "agentfleet-api-crippled" not in response.text
        assert "server" not in response.headers  # nor what it runs on
        log = crippled.log.read_text()
        assert (
            rid in log and "system:serviceaccount:agentfleet-system:agentfleet-api-crippled" in log
        )
    finally:
        crippled.stop()


# 504 is the documented answer of a deploy that is not Ready within its ready_timeout (the API
# waits on the cluster like a gateway on its upstream); every other 5xx is a failure.
SCHEMATHESIS_CONFIG = """
[checks.not_a_server_error]
expected-statuses = ["1xx", "2xx", "3xx", "4xx", "504"]
"""


def test_schemathesis_fuzzes_the_published_schema(
    cluster: Cluster, operator: Operator, tmp_path: Path
) -> None:
    """A short, bounded fuzz run against the running API (its own namespace and process, with
    waits capped at 2 s). Checks: no server errors, documented status codes, content types and
    response schemas, and schema-invalid requests refused. `positive_data_acceptance` is left
    out: the API rightly answers 422 for schema-valid bodies Kubernetes refuses (duplicate
    mount paths) and 409 for an agent that exists with another spec."""
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG)
    namespace = f"fuzz-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("apply", "-f", "-", input=CALLERS.replace("NS", namespace))
    token = caller_tokens(cluster, namespace, "ops")["ops"]
    # --insecure, deliberately: plain HTTP on loopback is the local-use mode.
    server = start_api(cluster, namespace, "fuzz-api", "--max-wait", "2", "--grpc-port", "0")
    url = server.url
    try:
        result = subprocess.run(
            [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config),
             "run", f"{url}/openapi.json",
             "--header", f"Authorization: Bearer {token}",
             "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
             "response_schema_conformance,negative_data_rejection",
             "--max-examples", "8", "--seed", "20260101", "--workers", "1",
             "--request-timeout", "60", "--generation-codec", "utf-8",
             "--generation-database", "none", "--no-color"],
            capture_output=True, text=True, timeout=420, cwd=OUTPUT,
        )  # fmt: skip
        report = result.stdout[result.stdout.find("FAILURES") :][:8000]
        assert result.returncode == 0, report + server.log.read_text()[-3000:]
        assert "passed" in result.stdout
        # Whatever the fuzzer managed to create is a valid agent: nothing half-made.
        for item in agents_in(cluster, namespace).values():
            AgentSpec.model_validate(item["spec"])
    finally:
        server.stop()
        cleanup_namespace(cluster, namespace)
