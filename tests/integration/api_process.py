"""`agentfleet api` as a real process, with the least-privilege identity the chart gives it and
certificates made for the test (a CA, the API's serving certificate, client certificates)."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import OUTPUT, Cluster, eventually

# What the API itself may do (it acts with its own identity once a caller is authorized):
# read, create, apply (gRPC) and delete AIAgents, read Pods (GPU ledger) and Nodes, read node
# agent Leases, and ask the API server who a token is and what it may do.
API_RBAC = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: agentfleet-api, namespace: agentfleet-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: agentfleet-api}
rules:
  - apiGroups: [agentfleet.io]
    resources: [aiagents]
    verbs: [get, list, watch, create, patch, delete]
  - apiGroups: [""]
    resources: [pods, nodes]
    verbs: [get, list]
  - apiGroups: [authentication.k8s.io]
    resources: [tokenreviews]
    verbs: [create]
  - apiGroups: [authorization.k8s.io]
    resources: [subjectaccessreviews]
    verbs: [create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: agentfleet-api}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: agentfleet-api}
subjects: [{kind: ServiceAccount, name: agentfleet-api, namespace: agentfleet-system}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: agentfleet-api-leases, namespace: agentfleet-system}
rules:
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: agentfleet-api-leases, namespace: agentfleet-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: agentfleet-api-leases}
subjects: [{kind: ServiceAccount, name: agentfleet-api, namespace: agentfleet-system}]
"""

# An identity that may authenticate and authorize callers but not touch AIAgents: every
# request it accepts then fails on the API's own side (a 5xx that must not say why).
CRIPPLED_RBAC = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: agentfleet-api-crippled, namespace: agentfleet-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: agentfleet-api-crippled}
rules:
  - apiGroups: [authentication.k8s.io]
    resources: [tokenreviews]
    verbs: [create]
  - apiGroups: [authorization.k8s.io]
    resources: [subjectaccessreviews]
    verbs: [create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: agentfleet-api-crippled}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: agentfleet-api-crippled}
subjects: [{kind: ServiceAccount, name: agentfleet-api-crippled, namespace: agentfleet-system}]
"""

AUDIENCE = "agentfleet-api"  # the API's default --token-audience


@dataclass
class Certificates:
    """A CA that signs the API's serving certificate and the gRPC clients' certificates."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def serving(self) -> Path:
        return self.directory / "serving"

    def client(self, user: str, *groups: str) -> tuple[bytes, bytes]:
        """(certificate, key) PEM of a client certificate for `user` in `groups`."""
        from agentfleet_dev.certs import PKI

        folder = self.directory / "clients" / "-".join((user, *groups))
        crt = PKI(self.directory).client_cert(folder, user, groups)
        return crt.read_bytes(), crt.with_suffix(".key").read_bytes()

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def make_certificates(directory: Path) -> Certificates:
    from agentfleet_dev.certs import PKI

    pki = PKI(directory)
    if not pki.path("ca.crt").exists():
        pki.create()
    pki.serving_cert_dir(directory / "serving", "agentfleet-api")
    return Certificates(directory)


def token_kubeconfig(cluster: Cluster, token: str, path: Path) -> Path:
    admin = json.loads(
        cluster.kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout
    )
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "api",
        "clusters": [{"name": "cluster", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": "api", "user": {"token": token}}],
        "contexts": [{"name": "api", "context": {"cluster": "cluster", "user": "api"}}],
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


@dataclass
class ApiProcess:
    process: subprocess.Popen[bytes]
    url: str
    grpc_target: str
    log: Path
    certificates: Certificates | None = None
    args: list[str] = field(default_factory=list)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_api(
    cluster: Cluster,
    namespace: str,
    name: str,
    *args: str,
    certificates: Certificates | None = None,
    identity: str = "agentfleet-api",
) -> ApiProcess:
    """`agentfleet api` with the API's own ServiceAccount (`identity`): HTTPS and mutual-TLS
    gRPC with `certificates`, else `--insecure` (plain HTTP, plaintext gRPC)."""
    from agentfleet_dev.cluster import free_ports

    cluster.kubectl("apply", "-f", "-", input=API_RBAC + "---\n" + CRIPPLED_RBAC)
    token = cluster.kubectl(
        "create", "token", identity, "-n", "agentfleet-system", "--duration=2h"
    ).stdout.strip()
    OUTPUT.mkdir(exist_ok=True)
    kubeconfig = token_kubeconfig(cluster, token, OUTPUT / f"{name}.kubeconfig")
    port, grpc_port = free_ports(2)
    if certificates:
        tls = [
            "--tls-cert-file", str(certificates.serving / "tls.crt"),
            "--tls-private-key-file", str(certificates.serving / "tls.key"),
            "--client-ca-file", str(certificates.ca),
        ]  # fmt: skip
    else:
        tls = ["--insecure"]
    command = [
        sys.executable, "-m", "agentfleet", "api", "--port", str(port),
        "--grpc-port", str(grpc_port), "--kubeconfig", str(kubeconfig), "-n", namespace,
        *tls, *args,
    ]  # fmt: skip
    log = OUTPUT / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if k != "KUBECONFIG"},
        )
    scheme = "https" if certificates else "http"
    api = ApiProcess(
        process, f"{scheme}://localhost:{port}", f"localhost:{grpc_port}", log, certificates
    )
    context = certificates.ssl_context() if certificates else None

    def serving() -> bool:
        assert process.poll() is None, f"the API exited:\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"{api.url}/healthz", timeout=2, context=context) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    eventually(serving, timeout=60, what=f"{name}'s /healthz")
    return api


def apiserver_metric(cluster: Cluster, name: str, **labels: str) -> float:
    """The sum of a counter of the API server's own /metrics over the matching series."""
    from prometheus_client.parser import text_string_to_metric_families

    text = cluster.kubectl("get", "--raw", "/metrics").stdout
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def cleanup_namespace(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    cluster.kubectl(
        "delete", "clusterrole,clusterrolebinding", f"{namespace}-fleet-inventory", check=False
    )


def caller_tokens(cluster: Cluster, namespace: str, *who: str, audience: str = AUDIENCE) -> Any:
    return {
        name: cluster.kubectl(
            "create", "token", name, "-n", namespace, f"--audience={audience}"
        ).stdout.strip()
        for name in who
    }
