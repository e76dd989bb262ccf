"""The gRPC control API's pure parts: the generated code is current, requests become AIAgents
(or are refused naming the field), AIAgents become workload statuses, and a client certificate
names its user as Kubernetes reads it. Calls over mutual TLS: tests/integration/test_grpc_api.py.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agentfleet.api import constants as c
from agentfleet.frontends.grpc import identity
from agentfleet.frontends.grpc import workloads as w
from agentfleet.frontends.grpc.gen import compute_agent_pb2 as pb
from agentfleet_dev import protos
from agentfleet_dev.certs import PKI


def test_the_generated_code_is_what_make_protos_makes(tmp_path: Path) -> None:
    written = protos.generate(tmp_path)
    assert {p.name for p in written} == {
        "__init__.py",
        "compute_agent_pb2.py",
        "compute_agent_pb2.pyi",
        "compute_agent_pb2_grpc.py",
    }
    for fresh in written:
        committed = protos.GENERATED / fresh.name
        assert committed.exists(), f"{committed} is missing: run `make protos`"
        assert committed.read_text() == fresh.read_text(), f"{committed} is stale: `make protos`"
    assert {p.name for p in protos.GENERATED.glob("*.py*")} == {p.name for p in written}


def test_the_service_has_the_compute_agents_methods() -> None:
    service = pb.DESCRIPTOR.services_by_name["ComputeAgent"]
    assert service.full_name == "agentfleet.v1.ComputeAgent"
    assert {m.name for m in service.methods} == {
        "ApplyWorkload",
        "DeleteWorkload",
        "GetWorkloadStatus",
        "ListWorkloads",
        "HealthCheck",
        "WatchAgents",
    }
    apply = pb.ApplyWorkloadRequest.DESCRIPTOR.fields_by_name
    assert {"id", "type", "revision_id", "desired_state", "spec"} <= set(apply)
    assert set(pb.ApplyWorkloadResponse.DESCRIPTOR.fields_by_name) == {
        "applied",
        "skipped",
        "status",
    }
    assert service.methods_by_name["WatchAgents"].server_streaming


def request(**fields: Any) -> pb.ApplyWorkloadRequest:
    spec = fields.pop("spec", {"image": "ghcr.io/acme/coder:1.0"})
    defaults = {"id": "coder", "type": "coding", "revision_id": "r1"}
    return pb.ApplyWorkloadRequest(**(defaults | fields), spec=w.spec_struct(spec))


def test_a_workload_is_an_aiagent_with_its_revision() -> None:
    desired = w.desired_agent(
        request(spec={"image": "i:1", "replicas": 2, "gpu": {"count": 1, "vram": "8Gi"}})
    )
    assert (desired.namespace, desired.name, desired.revision) == ("default", "coder", "r1")
    assert desired.body["metadata"] == {
        "name": "coder",
        "namespace": "default",
        "annotations": {c.ANNOTATION_WORKLOAD_REVISION: "r1"},
    }
    # Struct numbers are doubles; whole ones go back to integers (replicas: 2, not 2.0).
    assert desired.body["spec"] == {
        "agentType": "coding",
        "image": "i:1",
        "replicas": 2,
        "gpu": {"count": 1, "vram": "8Gi"},
    }
    assert isinstance(desired.body["spec"]["replicas"], int)
    stopped = w.desired_agent(request(desired_state=pb.DESIRED_STATE_STOPPED, namespace="ai"))
    assert stopped.namespace == "ai" and stopped.body["spec"]["replicas"] == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"id": ""}, "id"),
        ({"id": "Bad_Name"}, "id"),
        ({"id": "a" * 64}, "id"),
        ({"namespace": "No Space"}, "namespace"),
        ({"type": "robot"}, "type"),
        ({"revision_id": ""}, "revision_id"),
        ({"revision_id": "a\nb"}, "revision_id"),
        ({"desired_state": 7}, "desired_state"),
        ({"spec": {}}, "spec.image"),
        ({"spec": {"image": 5}}, "spec.image"),
        ({"spec": {"image": "i", "replicas": 1.5}}, "spec.replicas"),
        ({"spec": {"image": "i", "replicas": 0}}, "spec.replicas"),
        ({"spec": {"image": "i", "agentType": "testing"}}, "spec.agentType"),
        ({"spec": {"image": "i", "colour": "blue"}}, "spec.colour"),
        (
            {"desired_state": pb.DESIRED_STATE_STOPPED,
             "spec": {"image": "i", "autoscaling": {"maxReplicas": 3}}},
            "desired_state",
        ),
    ],
)  # fmt: skip
def test_bad_requests_are_refused_naming_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(w.InvalidArgument) as refused:
        w.desired_agent(request(**fields))
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")


def agent(spec: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "coder",
            "namespace": "ai",
            "generation": 2,
            "annotations": {c.ANNOTATION_WORKLOAD_REVISION: "r2"},
        },
        "spec": {"agentType": "coding", "image": "i", **spec},
        "status": {"observedGeneration": 2, **status},
    }


READY = {"type": "Ready", "status": "True", "reason": "Available", "message": "1 of 1"}


@pytest.mark.parametrize(
    ("spec", "status", "state", "desired"),
    [
        ({}, {}, pb.WORKLOAD_STATE_PENDING, pb.DESIRED_STATE_RUNNING),
        ({}, {"conditions": [READY]}, pb.WORKLOAD_STATE_RUNNING, pb.DESIRED_STATE_RUNNING),
        (
            {"replicas": 0},
            {"conditions": [{**READY, "reason": "ScaledToZero"}]},
            pb.WORKLOAD_STATE_STOPPED,
            pb.DESIRED_STATE_STOPPED,
        ),
        (
            {},
            {"conditions": [{"type": "Stalled", "status": "True", "reason": "InvalidSpec"}]},
            pb.WORKLOAD_STATE_FAILED,
            pb.DESIRED_STATE_RUNNING,
        ),
    ],
)
def test_workload_status(
    spec: dict[str, Any], status: dict[str, Any], state: int, desired: int
) -> None:
    view = w.workload_status(agent(spec, readyReplicas=1, replicas=1, **status))
    assert (view.id, view.namespace, view.type, view.revision_id) == ("coder", "ai", "coding", "r2")
    assert (view.state, view.desired_state) == (state, desired)
    assert (view.generation, view.observed_generation, view.ready_replicas) == (2, 2, 1)


def test_a_client_certificate_names_user_and_groups_as_kubernetes_does(tmp_path: Path) -> None:
    pki = PKI(tmp_path)
    pki.create()
    crt = pki.client_cert(tmp_path / "clients", "alice", ("fleet-admins", "dev"))
    assert identity.certificate_user(crt.read_bytes()) == {
        "username": "alice",
        "groups": ["fleet-admins", "dev", "system:authenticated"],
    }
    # A serving certificate is not a client certificate (extended key usage), as in Kubernetes.
    serving = pki.serving_cert_dir(tmp_path / "serving", "agentfleet-api") / "tls.crt"
    with pytest.raises(identity.NotAuthenticated, match="not for client authentication"):
        identity.certificate_user(serving.read_bytes())
    with pytest.raises(identity.NotAuthenticated, match="no common name"):
        identity.certificate_user(_certificate_without_common_name())


def _certificate_without_common_name() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters")])
    moment = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment)
        .not_valid_after(moment + datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_bearer_tokens_in_metadata() -> None:
    assert identity.bearer_token([("authorization", "Bearer abc")]) == "abc"
    assert identity.bearer_token([("Authorization", "bearer  abc ")]) == "abc"
    assert identity.bearer_token([("authorization", "Basic abc")]) is None
    assert identity.bearer_token([("x-other", "Bearer abc")]) is None
    assert identity.bearer_token(None) is None


def test_the_rpc_command_reads_json_requests_in_the_protos_field_names() -> None:
    from agentfleet.frontends.grpc import client

    message = client.request_of(
        "ApplyWorkload",
        '{"id": "coder", "revision_id": "r1", "desired_state": "DESIRED_STATE_STOPPED",'
        ' "spec": {"image": "i:1"}}',
    )
    assert isinstance(message, pb.ApplyWorkloadRequest)
    assert (message.id, message.desired_state) == ("coder", pb.DESIRED_STATE_STOPPED)
    assert message.spec["image"] == "i:1"
    with pytest.raises(client.BadRequest, match=r"is not a method of agentfleet\.v1\.ComputeAgent"):
        client.request_of("Spawn", "{}")
    with pytest.raises(client.BadRequest, match="is not a ApplyWorkloadRequest"):
        client.request_of("ApplyWorkload", '{"colour": "blue"}')


def test_the_rpc_command_wants_mutual_tls_files_unless_insecure(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agentfleet.main import app

    runner = CliRunner()
    bare = runner.invoke(app, ["rpc", "HealthCheck"])
    assert bare.exit_code == 2 and "--cert, --key and --ca are required" in bare.output
    empty = tmp_path / "empty.crt"
    empty.write_bytes(b"")
    files = ["--cert", str(empty), "--key", str(empty), "--ca", str(empty)]
    unreadable = runner.invoke(app, ["rpc", "HealthCheck", *files])
    assert unreadable.exit_code == 2 and f"cannot read --cert {empty}" in unreadable.output
