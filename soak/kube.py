"""The soak's (and the fuzz tests') view of the API server: an identity of its own for the
operator under test, and the API server's own count of that identity's writes.

The operator runs with the token of a ServiceAccount made for the run and bound to exactly
the operator's Role and ClusterRole from manifests/operator, so the RBAC is the shipped one
and no other process shares the identity. A FlowSchema that matches only that
ServiceAccount's write verbs makes API Priority and Fairness count its requests
(`apiserver_flowcontrol_dispatched_requests_total{flow_schema=...}`): every write the API
server received from the operator, whatever the resource, Events included, whether or not
it succeeded. The FlowSchema keeps the priority level the request would get anyway
(`workload-low`, like every ServiceAccount outside kube-system).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
OPERATOR_MANIFESTS = ROOT / "manifests" / "operator"
OPERATOR_NAMESPACE = "agentfleet-system"
OPERATOR_ROLE = "agentfleet-operator"  # the Role and the ClusterRole in manifests/operator
DISPATCHED = "apiserver_flowcontrol_dispatched_requests_total"
WRITE_VERBS = ["create", "update", "patch", "delete", "deletecollection"]


@dataclass(frozen=True)
class Kubectl:
    path: str
    kubeconfig: str

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.path, f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()[-2000:]}")
        return proc


def identity_objects(name: str) -> list[dict[str, Any]]:
    """A ServiceAccount bound to the operator's own Role and ClusterRole, and the FlowSchema
    that counts its writes."""
    subject = {"kind": "ServiceAccount", "name": name, "namespace": OPERATOR_NAMESPACE}
    meta = {"name": name, "labels": {"app.kubernetes.io/part-of": "agentfleet"}}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {**meta, "namespace": OPERATOR_NAMESPACE}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {**meta, "namespace": OPERATOR_NAMESPACE},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": OPERATOR_ROLE},
         "subjects": [subject]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": OPERATOR_ROLE},
         "subjects": [subject]},
        {"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
         "metadata": meta,
         "spec": {
             # Below the built-in schemas that could match a ServiceAccount outside
             # kube-system (service-accounts is 9000).
             "matchingPrecedence": 8700,
             "priorityLevelConfiguration": {"name": "workload-low"},
             "distinguisherMethod": {"type": "ByUser"},
             "rules": [{
                 "subjects": [{"kind": "ServiceAccount",
                               "serviceAccount": {"name": name,
                                                  "namespace": OPERATOR_NAMESPACE}}],
                 "resourceRules": [{"verbs": WRITE_VERBS, "apiGroups": ["*"],
                                    "resources": ["*"], "namespaces": ["*"],
                                    "clusterScope": True}],
             }],
         }},
    ]  # fmt: skip


class Identity:
    """An operator identity of its own (see the module docstring)."""

    def __init__(self, kubectl: Kubectl, name: str, output: Path) -> None:
        self.kubectl = kubectl
        self.name = name
        self.output = output

    def install(self) -> Path:
        """Create the identity; returns a kubeconfig with its token."""
        self.kubectl(
            "apply", "-f", str(OPERATOR_MANIFESTS / "namespace.yaml"),
            "-f", str(OPERATOR_MANIFESTS / "rbac.yaml"),
        )  # fmt: skip
        objects = "\n---\n".join(json.dumps(o) for o in identity_objects(self.name))
        self.kubectl("apply", "--server-side", "-f", "-", input=objects)
        token = self.kubectl(
            "create", "token", self.name, "-n", OPERATOR_NAMESPACE, "--duration=12h"
        ).stdout.strip()
        admin = json.loads(self.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": self.name,
            "clusters": [{"name": "cluster", "cluster": admin["clusters"][0]["cluster"]}],
            "users": [{"name": self.name, "user": {"token": token}}],
            "contexts": [{"name": self.name, "context": {"cluster": "cluster", "user": self.name}}],
        }
        self.output.mkdir(parents=True, exist_ok=True)
        path = self.output / f"{self.name}.kubeconfig"
        path.write_text(json.dumps(config))
        path.chmod(0o600)
        return path

    def uninstall(self) -> None:
        for kind in ("flowschema", "clusterrolebinding"):
            self.kubectl("delete", kind, self.name, "--ignore-not-found", check=False)
        self.kubectl(
            "delete", "serviceaccount,rolebinding", self.name, "-n", OPERATOR_NAMESPACE,
            "--ignore-not-found", check=False,
        )  # fmt: skip

    def writes(self) -> int:
        """Every write request the API server has received from this identity so far."""
        text = self.kubectl("get", "--raw", "/metrics").stdout
        wanted = f'flow_schema="{self.name}"'
        lines = [l for l in text.splitlines() if l.startswith(DISPATCHED) and wanted in l]  # noqa: E741
        total = 0.0
        for family in text_string_to_metric_families("\n".join(lines) + "\n"):
            for sample in family.samples:
                if sample.labels.get("flow_schema") == self.name:
                    total += sample.value
        return round(total)
