"""Who talks to the API server in a run, each with a ServiceAccount token of its own.

Two identities are measured: the operator, with exactly the RBAC it ships
(manifests/operator/), and the *client*: the user who creates and edits AIAgents on the
operator's side and who, for the baseline, creates the same AIAgents and then applies the
rendered objects itself. Both are ServiceAccounts outside kube-system, so API Priority and
Fairness puts both in the same priority level (`workload-low`, see writes.py); the admin
identity the harness uses to watch, audit and read metrics is exempt and is never counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmarks.kube import OPERATOR_MANIFESTS, BenchError, ClusterAccess

CLIENT_NAMESPACE = "agentfleet-bench"
CLIENT_NAME = "agentfleet-bench-client"
# Everything the client applies: AIAgents, the plain children, mesh and autoscaling kinds.
CLIENT_GROUPS = (
    "",
    "apps",
    "agentfleet.io",
    "keda.sh",
    "security.istio.io",
    "networking.istio.io",
    "gateway.networking.k8s.io",
)


@dataclass(frozen=True)
class Identity:
    name: str
    namespace: str

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    @property
    def subject(self) -> dict[str, object]:
        """The FlowSchema subject that matches exactly this ServiceAccount."""
        return {
            "kind": "ServiceAccount",
            "serviceAccount": {"name": self.name, "namespace": self.namespace},
        }


def operator_identity() -> Identity:
    """The operator's ServiceAccount from manifests/operator/rbac.yaml."""
    for doc in yaml.safe_load_all((OPERATOR_MANIFESTS / "rbac.yaml").read_text()):
        if doc and doc.get("kind") == "ServiceAccount":
            meta = doc["metadata"]
            return Identity(meta["name"], meta["namespace"])
    raise BenchError("manifests/operator/rbac.yaml has no ServiceAccount")


CLIENT = Identity(CLIENT_NAME, CLIENT_NAMESPACE)


def install_operator(access: ClusterAccess, path: Path) -> Identity:
    """The operator's namespace and RBAC as shipped, and a kubeconfig with a token of its
    ServiceAccount, so that the operator is measured with exactly the permissions it has."""
    identity = operator_identity()
    access.kubectl(
        "apply",
        "-f",
        str(OPERATOR_MANIFESTS / "namespace.yaml"),
        "-f",
        str(OPERATOR_MANIFESTS / "rbac.yaml"),
    )
    write_kubeconfig(access, identity, path)
    return identity


def install_client(access: ClusterAccess, path: Path) -> Identity:
    """The client's ServiceAccount, allowed to write what it applies in any namespace."""
    name = CLIENT.name
    objects = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": CLIENT.namespace},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": CLIENT.namespace},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": [{"apiGroups": list(CLIENT_GROUPS), "resources": ["*"], "verbs": ["*"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": CLIENT.namespace}],
        },
    ]
    access.kubectl(
        "apply", "--server-side", "-f", "-", input="\n---\n".join(json.dumps(o) for o in objects)
    )
    write_kubeconfig(access, CLIENT, path)
    return CLIENT


def write_kubeconfig(access: ClusterAccess, identity: Identity, path: Path) -> None:
    """A kubeconfig for the admin's cluster with a 6-hour token of the ServiceAccount."""
    token = access.kubectl(
        "create", "token", identity.name, "-n", identity.namespace, "--duration=6h"
    ).stdout.strip()
    admin = json.loads(
        access.kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout
    )
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": identity.name,
        "clusters": [{"name": "cluster", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": identity.name, "user": {"token": token}}],
        "contexts": [
            {"name": identity.name, "context": {"cluster": "cluster", "user": identity.name}}
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config))
    path.chmod(0o600)
