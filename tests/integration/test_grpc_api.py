"""The compute agent's gRPC control API over mutual TLS, against a real API server with the
operator running: real client certificates, real RBAC for the certificates' users and groups,
and the API server's own metrics to count the API's writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from agentfleet.api import constants as c
from agentfleet.frontends.grpc import workloads as w
from agentfleet.frontends.grpc.gen import compute_agent_pb2 as pb
from agentfleet.frontends.grpc.gen import compute_agent_pb2_grpc as pb_grpc
from tests.conftest import OUTPUT, Cluster, Operator, eventually
from tests.integration.api_process import (
    ApiProcess,
    Certificates,
    apiserver_metric,
    make_certificates,
    start_api,
)

pytestmark = pytest.mark.cluster

# The certificates' users: alice may do everything to AIAgents in the namespace, reader may only
# read, and the group fleet-admins (a certificate's O) may do everything too.
RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: workloads, namespace: NS}
rules: [{apiGroups: [agentfleet.io], resources: [aiagents],
         verbs: [get, list, watch, create, patch, delete]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: read-workloads, namespace: NS}
rules: [{apiGroups: [agentfleet.io], resources: [aiagents], verbs: [get, list, watch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: workloads, namespace: NS}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: workloads}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
  - {apiGroup: rbac.authorization.k8s.io, kind: Group, name: fleet-admins}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: read-workloads, namespace: NS}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-workloads}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: reader}]
"""

# API Priority and Fairness sorts every request into a FlowSchema and counts it there: this one
# takes exactly the API's writes to AIAgents, so the API server itself counts them.
WRITES_FLOW_SCHEMA = "agentfleet-api-aiagent-writes"
FLOW_SCHEMA = f"""
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {{name: {WRITES_FLOW_SCHEMA}}}
spec:
  matchingPrecedence: 100
  priorityLevelConfiguration: {{name: workload-high}}
  distinguisherMethod: {{type: ByUser}}
  rules:
    - subjects:
        - kind: ServiceAccount
          serviceAccount: {{name: agentfleet-api, namespace: agentfleet-system}}
      resourceRules:
        - apiGroups: [agentfleet.io]
          resources: [aiagents]
          verbs: [create, update, patch, delete]
          namespaces: ["*"]
"""


@dataclass
class Grpc:
    server: ApiProcess
    namespace: str
    certificates: Certificates

    def channel(self, user: str | None = "alice", *groups: str, ca: Path | None = None) -> Any:
        """A mutual-TLS channel with a certificate for `user` (None: no client certificate)."""
        key = cert = None
        if user is not None:
            cert, key = self.certificates.client(user, *groups)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=(ca or self.certificates.ca).read_bytes(),
            private_key=key,
            certificate_chain=cert,
        )
        return grpc.secure_channel(self.server.grpc_target, credentials)

    def stub(self, user: str = "alice", *groups: str) -> pb_grpc.ComputeAgentStub:
        return pb_grpc.ComputeAgentStub(self.channel(user, *groups))

    def apply(self, stub: pb_grpc.ComputeAgentStub, **fields: Any) -> pb.ApplyWorkloadResponse:
        spec = fields.pop("spec", {"image": "ghcr.io/acme/coder:1.0"})
        fields = {"namespace": self.namespace, "type": "coding", **fields}
        request = pb.ApplyWorkloadRequest(spec=w.spec_struct(spec), **fields)
        response: pb.ApplyWorkloadResponse = stub.ApplyWorkload(request, timeout=60)
        return response


@pytest.fixture(scope="module")
def api(cluster: Cluster, operator: Operator) -> Iterator[Grpc]:
    certificates = make_certificates(OUTPUT / "api-pki")
    namespace = f"grpc-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("apply", "-f", "-", input=RBAC.replace("NS", namespace) + "---" + FLOW_SCHEMA)
    server = start_api(cluster, namespace, "test-grpc-api", certificates=certificates)
    try:
        yield Grpc(server, namespace, certificates)
    finally:
        server.stop()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        cluster.kubectl("delete", "flowschema", WRITES_FLOW_SCHEMA, check=False)


def agent(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    got = cluster.kubectl("get", "aia", name, "-n", namespace, "-o", "json", check=False)
    return json.loads(got.stdout) if got.returncode == 0 else None


def code_of(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as failed:
        call()
    return failed.value.code()  # type: ignore[no-any-return]


def test_a_client_without_a_certificate_is_refused_in_the_handshake(api: Grpc) -> None:
    stub = pb_grpc.ComputeAgentStub(api.channel(None))
    assert code_of(lambda: stub.HealthCheck(pb.HealthCheckRequest(), timeout=10)) == (
        grpc.StatusCode.UNAVAILABLE
    )


def test_a_certificate_from_an_unknown_ca_is_refused(api: Grpc, tmp_path: Path) -> None:
    stranger = make_certificates(tmp_path / "other-ca")
    cert, key = stranger.client("alice")  # the right name, the wrong CA
    credentials = grpc.ssl_channel_credentials(
        root_certificates=api.certificates.ca.read_bytes(), private_key=key, certificate_chain=cert
    )
    stub = pb_grpc.ComputeAgentStub(grpc.secure_channel(api.server.grpc_target, credentials))
    assert code_of(lambda: stub.HealthCheck(pb.HealthCheckRequest(), timeout=10)) == (
        grpc.StatusCode.UNAVAILABLE
    )


def test_health_reflection_and_the_standard_health_service(api: Grpc) -> None:
    stub = api.stub()
    health = stub.HealthCheck(pb.HealthCheckRequest(), timeout=30)
    assert health.healthy and health.version
    channel = api.channel()
    standard = health_pb2_grpc.HealthStub(channel)
    for service in ("", "agentfleet.v1.ComputeAgent"):
        answer = standard.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert {"agentfleet.v1.ComputeAgent", "grpc.health.v1.Health"} <= names


def test_a_reader_may_not_apply(cluster: Cluster, api: Grpc) -> None:
    reader = api.stub("reader")
    with pytest.raises(grpc.RpcError) as refused:
        api.apply(reader, id="not-for-readers", revision_id="r1")
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.details() == (
        f"reader may not patch aiagents.agentfleet.io in namespace {api.namespace}"
    )
    assert agent(cluster, api.namespace, "not-for-readers") is None
    reader.ListWorkloads(pb.ListWorkloadsRequest(namespace=api.namespace), timeout=30)  # may read


def test_the_same_revision_twice_is_skipped_without_a_write(cluster: Cluster, api: Grpc) -> None:
    def writes() -> float:
        return apiserver_metric(
            cluster,
            "apiserver_flowcontrol_dispatched_requests_total",
            flow_schema=WRITES_FLOW_SCHEMA,
        )

    stub = api.stub()
    before = writes()
    first = api.apply(stub, id="coder", revision_id="r1")
    assert (first.applied, first.skipped) == (True, False)
    assert first.status.revision_id == "r1" and first.status.type == "coding"
    assert writes() == before + 1  # the API server counted the apply
    stored = agent(cluster, api.namespace, "coder")
    assert stored is not None
    assert stored["metadata"]["annotations"][c.ANNOTATION_WORKLOAD_REVISION] == "r1"

    again = api.apply(stub, id="coder", revision_id="r1")
    assert (again.applied, again.skipped) == (False, True)
    assert writes() == before + 1  # no write for a revision already applied
    current = agent(cluster, api.namespace, "coder")
    assert current is not None and current["metadata"]["generation"] == 1  # spec untouched

    def running() -> None:
        status = stub.GetWorkloadStatus(
            pb.GetWorkloadStatusRequest(id="coder", namespace=api.namespace), timeout=30
        ).status
        assert status.state == pb.WORKLOAD_STATE_RUNNING, status

    eventually(running, timeout=60, what="coder Running")

    stopped = api.apply(stub, id="coder", revision_id="r2", desired_state=pb.DESIRED_STATE_STOPPED)
    assert stopped.applied and writes() == before + 2
    spec = (agent(cluster, api.namespace, "coder") or {})["spec"]
    assert spec["replicas"] == 0

    def stopped_state() -> None:
        status = stub.GetWorkloadStatus(
            pb.GetWorkloadStatusRequest(id="coder", namespace=api.namespace), timeout=30
        ).status
        assert status.state == pb.WORKLOAD_STATE_STOPPED, status

    eventually(stopped_state, timeout=60, what="coder Stopped")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"id": "Bad_Name", "revision_id": "r1"}, "id"),
        ({"id": "bad-type", "revision_id": "r1", "type": "robot"}, "type"),
        ({"id": "no-revision"}, "revision_id"),
        ({"id": "no-image", "revision_id": "r1", "spec": {}}, "spec.image"),
        ({"id": "bad-replicas", "revision_id": "r1", "spec": {"image": "i", "replicas": -1}},
         "spec.replicas"),
    ],
)  # fmt: skip
def test_bad_input_is_invalid_argument_naming_the_field(
    cluster: Cluster, api: Grpc, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        api.apply(api.stub(), **fields)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith(f"{field}: ")
    assert agent(cluster, api.namespace, fields["id"].lower()) is None


def test_a_group_from_the_certificate_is_authorised_and_workloads_are_listed_and_deleted(
    cluster: Cluster, api: Grpc
) -> None:
    admin = api.stub("bob", "fleet-admins")  # bob himself has no binding: his group does
    spec = {"image": "ghcr.io/acme/tester:1", "agentType": "testing"}
    applied = api.apply(admin, id="tester", revision_id="t1", type="testing", spec=spec)
    assert applied.applied
    mine = admin.ListWorkloads(
        pb.ListWorkloadsRequest(namespace=api.namespace, type="testing"), timeout=30
    )
    assert [s.id for s in mine.workloads] == ["tester"]
    everything = admin.ListWorkloads(pb.ListWorkloadsRequest(namespace=api.namespace), timeout=30)
    assert "tester" in {s.id for s in everything.workloads}
    alone = api.stub("bob")  # the same user without the group
    request = pb.ListWorkloadsRequest(namespace=api.namespace)
    assert code_of(lambda: alone.ListWorkloads(request, timeout=30)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    deleted = admin.DeleteWorkload(
        pb.DeleteWorkloadRequest(id="tester", namespace=api.namespace), timeout=30
    )
    assert deleted.deleted
    eventually(lambda: agent(cluster, api.namespace, "tester") is None, timeout=60)
    gone = pb.DeleteWorkloadRequest(id="tester", namespace=api.namespace)
    assert code_of(lambda: admin.DeleteWorkload(gone, timeout=30)) == grpc.StatusCode.NOT_FOUND


def test_watch_agents_streams_a_change(cluster: Cluster, api: Grpc) -> None:
    stub = api.stub()
    stream = stub.WatchAgents(
        pb.WatchAgentsRequest(namespace=api.namespace, type="documentation"), timeout=90
    )
    try:
        api.apply(stub, id="writer", revision_id="w1", type="documentation",
                  spec={"image": "ghcr.io/acme/writer:1"})  # fmt: skip
        seen = []
        for event in stream:
            seen.append((event.type, event.workload.id, event.workload.state))
            if event.workload.state == pb.WORKLOAD_STATE_RUNNING:
                break
        assert seen[0][:2] == (pb.AgentEvent.ADDED, "writer")
        assert seen[-1] == (pb.AgentEvent.MODIFIED, "writer", pb.WORKLOAD_STATE_RUNNING)
        assert all(workload == "writer" for _, workload, _ in seen)  # only its type
    finally:
        stream.cancel()
    stub.DeleteWorkload(pb.DeleteWorkloadRequest(id="writer", namespace=api.namespace), timeout=30)
    eventually(lambda: agent(cluster, api.namespace, "writer") is None, timeout=60)
    request = pb.GetWorkloadStatusRequest(id="writer", namespace=api.namespace)
    assert code_of(lambda: stub.GetWorkloadStatus(request, timeout=30)) == (
        grpc.StatusCode.NOT_FOUND
    )


def test_the_rpc_command_calls_over_mutual_tls(api: Grpc) -> None:
    """`agentfleet rpc`, the README's terminal session: JSON in, JSON out, exit codes."""

    def rpc(user: str, method: str, request: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        api.certificates.client(user)
        folder = api.certificates.directory / "clients" / user
        command = [
            sys.executable, "-m", "agentfleet", "rpc", method, json.dumps(request),
            "--server", api.server.grpc_target, "--cert", str(folder / f"{user}.crt"),
            "--key", str(folder / f"{user}.key"), "--ca", str(api.certificates.ca),
        ]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    health = rpc("alice", "HealthCheck", {})
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout)["healthy"] is True
    listed = rpc("reader", "ListWorkloads", {"namespace": api.namespace})
    assert listed.returncode == 0, listed.stderr
    assert isinstance(json.loads(listed.stdout), dict)
    request = {"id": "by-rpc", "type": "custom", "revision_id": "1", "namespace": api.namespace,
               "spec": {"image": "i:1"}}  # fmt: skip
    denied = rpc("reader", "ApplyWorkload", request)
    assert denied.returncode == 1
    assert "PERMISSION_DENIED: reader may not patch aiagents.agentfleet.io" in denied.stderr
    invalid = rpc("alice", "ApplyWorkload", {**request, "id": "By_Rpc"})
    assert invalid.returncode == 2 and "INVALID_ARGUMENT: id: " in invalid.stderr
