"""The Helm chart on a real API server, with the pinned helm: its renderings pass a server-side
dry run, `helm install` creates the operator and the operator runs with the chart's rendered
arguments and ServiceAccount token until an example agent is Ready, `helm upgrade` and
`helm uninstall` work, and `kubectl auth can-i` proves what each ServiceAccount may and may not do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentfleet.api import constants as c
from agentfleet.render.children import CHILD_KINDS
from tests.conftest import OUTPUT, ROOT, SUMMARY, Cluster, eventually
from tests.integration.api_process import token_kubeconfig

pytestmark = pytest.mark.cluster

CHART = ROOT / "charts" / "agentfleet"
ALL_OPTIONS = CHART / "ci" / "all-options-values.yaml"
MONITORING_KINDS = {"ServiceMonitor", "PrometheusRule"}  # need the Prometheus Operator's CRDs
CERT_MANAGER_KINDS = {"Certificate"}  # the API's serving certificate, when cert-manager makes it


@dataclass
class Helm:
    binary: Path
    kubeconfig: str

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.binary), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
        return proc


@pytest.fixture(scope="module")
def helm(cluster: Cluster) -> Helm:
    from agentfleet_dev import build

    binary = build.ensure(build.HELM, lambda m: print(m, file=sys.stderr)) / "bin" / "helm"
    return Helm(binary, cluster.kubeconfig)


def create_namespace(cluster: Cluster, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    return name


@pytest.fixture
def namespaces(cluster: Cluster) -> Iterator[list[str]]:
    """Three fresh namespaces: the release's and two to watch; deleted afterwards."""
    names = [create_namespace(cluster, prefix) for prefix in ("t-rel", "t-wa", "t-wb")]
    yield names
    cluster.kubectl("delete", "namespace", *names, "--wait=false", check=False)


def served_kinds(cluster: Cluster, group: str) -> set[str]:
    """Kinds the API server serves in this group (KIND is the last column)."""
    listing = cluster.kubectl("api-resources", f"--api-group={group}", check=False)
    return {line.split()[-1] for line in listing.stdout.splitlines()[1:] if line.strip()}


def server_dry_run(cluster: Cluster, manifest: str) -> tuple[int, list[str]]:
    """Apply every object with --dry-run=server (monitoring kinds only where their CRDs are);
    return how many the API server accepted and which kinds were left out."""
    documents = [d for d in yaml.safe_load_all(manifest) if d]
    served = served_kinds(cluster, "monitoring.coreos.com") | served_kinds(
        cluster, "cert-manager.io"
    )
    optional = MONITORING_KINDS | CERT_MANAGER_KINDS
    skipped = sorted({d["kind"] for d in documents if d["kind"] in optional - served})
    kept = [d for d in documents if d["kind"] not in skipped]
    # --force-conflicts: the crd fixture's kubectl owns the live CRD's fields; a dry run changes
    # nothing either way.
    result = cluster.kubectl(
        "apply", "--dry-run=server", "--server-side", "--force-conflicts",
        "--field-manager=helm-test", "-f", "-", input=yaml.safe_dump_all(kept),
    )  # fmt: skip
    accepted = [line for line in result.stdout.splitlines() if "(server dry run)" in line]
    assert len(accepted) == len(kept), result.stdout
    return len(accepted), skipped


@pytest.mark.parametrize("values", ["defaults", "all-options"])
def test_rendered_chart_is_accepted_by_the_api_server(
    cluster: Cluster, crd: None, helm: Helm, namespaces: list[str], values: str
) -> None:
    release_ns, team_a, team_b = namespaces
    args = ["template", "agentfleet", str(CHART), "-n", release_ns, "--include-crds"]
    if values == "all-options":
        args += ["-f", str(ALL_OPTIONS), "--set", f"watchNamespaces={{{team_a},{team_b}}}"]
        args += ["--set", f"grafanaDashboard.namespace={release_ns}"]
    accepted, skipped = server_dry_run(cluster, helm(*args).stdout)
    note = f"; left out {', '.join(skipped)} (CRDs not installed)" if skipped else ""
    SUMMARY.append(f"chart ({values}): server-side dry run accepted {accepted} objects{note}")


def test_kustomize_install_is_accepted_by_the_api_server(cluster: Cluster, crd: None) -> None:
    manifests = ROOT / "manifests" / "operator"
    cluster.kubectl("apply", "-f", str(manifests / "namespace.yaml"))  # namespaced objects need it
    rendered = cluster.kubectl("kustomize", str(manifests)).stdout
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(rendered) if d)
    expected = ["CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole"]
    expected += ["ClusterRoleBinding", "Role", "RoleBinding", "Service", "Deployment"]
    expected += ["PodDisruptionBudget"]
    assert kinds == sorted(expected)
    accepted, _ = server_dry_run(cluster, rendered)
    assert accepted == len(kinds)


# --- helm install, the operator from the rendered Deployment, upgrade, uninstall ---------------


def manifest_objects(helm: Helm, release: str, namespace: str) -> list[dict[str, Any]]:
    manifest = helm("get", "manifest", release, "-n", namespace).stdout
    return [d for d in yaml.safe_load_all(manifest) if d]


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def can_i(cluster: Cluster, subject: str, verb: str, resource: str, *scope: str) -> bool:
    """`kubectl auth can-i` as the subject; `pods/exec` style names ask for the subresource."""
    resource, _, subresource = resource.partition("/")
    if subresource:
        scope = (*scope, f"--subresource={subresource}")
    identity = [f"--as={subject}"] if subject else []  # "": the admin running the tests
    proc = cluster.kubectl("auth", "can-i", verb, resource, *identity, *scope, check=False)
    answer = proc.stdout.strip()
    assert answer in ("yes", "no"), proc.stderr
    return answer == "yes"


# (may, verb, resource, scope): what `kubectl auth can-i` must answer.
Matrix = list[tuple[bool, str, str, tuple[str, ...]]]


def check_matrix(cluster: Cluster, subject: str, matrix: Matrix) -> int:
    """Ask each distinct question once; return how many were asked."""
    questions = list(dict.fromkeys(matrix))
    wrong = [
        f"{'may' if allowed else 'may not'} {verb} {resource} {' '.join(scope)}"
        for allowed, verb, resource, scope in questions
        if can_i(cluster, subject, verb, resource, *scope) != allowed
    ]
    assert wrong == [], f"{subject} should: {wrong}"
    return len(questions)


def forbidden_everywhere(namespace: str) -> Matrix:
    """What no agentfleet identity may do: read Secrets, escalate, bind, impersonate, exec."""
    return [
        (False, "get", "secrets", ("-A",)),
        (False, "list", "secrets", ("-A",)),
        (False, "get", "secrets", ("-n", namespace)),
        (False, "get", "secrets", ("-n", "kube-system")),
        (False, "escalate", "clusterroles", ()),
        (False, "bind", "clusterroles", ()),
        (False, "create", "clusterrolebindings", ()),
        (False, "create", "rolebindings", ("-n", namespace)),
        (False, "impersonate", "users", ()),
        (False, "impersonate", "groups", ()),
        (False, "impersonate", "serviceaccounts", ("-n", namespace)),
        (False, "create", "pods/exec", ("-n", namespace)),
        (False, "create", "serviceaccounts/token", ("-n", namespace)),
        (False, "*", "*", ()),
    ]


def rbac_resource(group: str, resource: str) -> str:
    """`aiagents/status` of agentfleet.io -> `aiagents.agentfleet.io/status` (can-i's name)."""
    plural, slash, subresource = resource.partition("/")
    return f"{plural}.{group}{slash}{subresource}" if group else resource


def operator_needs(watched: str) -> Matrix:
    """What the operator does, from its own table of child kinds (not from the chart)."""
    here = ("-n", watched)
    needs: Matrix = [
        (True, "list", f"{c.PLURAL}.{c.GROUP}", here),
        (True, "watch", f"{c.PLURAL}.{c.GROUP}", here),
        (True, "patch", f"{c.PLURAL}.{c.GROUP}/status", here),
        (True, "create", "events", here),
        (True, "list", "namespaces", ()),
        (True, "watch", "customresourcedefinitions.apiextensions.k8s.io", ()),
    ]
    for row in CHILD_KINDS:
        for verb in ("get", "list", "watch", "create", "patch", "delete"):
            needs.append((True, verb, row.resource, here))
    return needs


def data_file_grants(watched: str, toggles: dict[str, bool], own: str) -> Matrix:
    """Every verb of every enabled rule in files/rbac.yaml: the chart binds what the file says."""
    data = yaml.safe_load((CHART / "files" / "rbac.yaml").read_text())
    grants: Matrix = []
    for group, rules in data.items():
        for rule in rules:
            needed_group = group if group != "clusterScoped" else rule.get("requires")
            if needed_group and not toggles.get(needed_group, True):
                continue
            scope = {"clusterScoped": (), "ownNamespace": ("-n", own)}.get(group, ("-n", watched))
            grants += [
                (True, verb, rbac_resource(api_group, resource), scope)
                for api_group in rule["apiGroups"]
                for resource in rule["resources"]
                for verb in rule["verbs"]
            ]
    return grants


def operator_matrix(watched: str, elsewhere: str, own: str) -> Matrix:
    """`own`: the release namespace, where only the shard claim Lease may be written."""
    here = ("-n", watched)
    return [
        *operator_needs(watched),
        *data_file_grants(watched, {}, own),
        (False, "create", f"{c.PLURAL}.{c.GROUP}", here),
        (False, "delete", f"{c.PLURAL}.{c.GROUP}", here),
        (False, "deletecollection", "pods", here),
        (False, "create", "leases.coordination.k8s.io", here),
        (False, "delete", "namespaces", ()),
        (False, "update", "customresourcedefinitions.apiextensions.k8s.io", ()),
        (False, "patch", "nodes", ()),
        (False, "get", "configmaps", ("-n", elsewhere)),
    ]


def test_denied_questions_are_well_formed(cluster: Cluster, namespaces: list[str]) -> None:
    """Every "may not" of the matrices is a real permission (cluster-admin has it), not a
    misspelt resource that nobody could have."""
    watched = namespaces[0]
    denied = [
        (verb, resource, scope)
        for allowed, verb, resource, scope in operator_matrix(watched, watched, watched)
        + forbidden_everywhere(watched)
        if not allowed
    ]
    unanswerable = [
        f"{verb} {resource} {' '.join(scope)}"
        for verb, resource, scope in denied
        if not can_i(cluster, "", verb, resource, *scope)
    ]
    assert unanswerable == []


def healthy(process: subprocess.Popen[bytes], url: str, log: Path) -> bool:
    assert process.poll() is None, f"operator exited:\n{log.read_text()[-3000:]}"
    try:
        return bool(urllib.request.urlopen(url, timeout=2).status == 200)
    except OSError:
        return False


def test_helm_install_runs_the_operator_then_upgrade_and_uninstall(
    cluster: Cluster, crd: None, helm: Helm, namespaces: list[str], tmp_path: Path
) -> None:
    from agentfleet_dev.cluster import free_ports

    release_ns, watched, elsewhere = namespaces
    release = f"af-{uuid.uuid4().hex[:6]}"
    metrics_port, health_port = free_ports(2)
    installed = helm(
        "install", release, str(CHART), "-n", release_ns, "--wait", "--timeout=180s",
        "--set", f"watchNamespaces={{{watched}}}",
        "--set", "operator.metricsAddress=127.0.0.1",
        "--set", f"operator.metricsPort={metrics_port},operator.healthPort={health_port}",
    )  # fmt: skip
    assert f"reconciles AIAgents in the namespaces {watched}." in installed.stdout  # NOTES.txt
    try:
        objects = manifest_objects(helm, release, release_ns)
        account = next(o for o in objects if o["kind"] == "ServiceAccount")["metadata"]["name"]
        subject = f"system:serviceaccount:{release_ns}:{account}"
        assert cluster.kubectl("get", "deployment", "-n", release_ns, "-o", "name").stdout.split()
        assert cluster.kubectl("get", "rolebinding", "-n", watched, "-o", "name").stdout.strip()
        checks = check_matrix(cluster, subject, operator_matrix(watched, elsewhere, release_ns))
        checks += check_matrix(
            cluster,
            subject,
            [
                *forbidden_everywhere(watched),
                (False, "list", "aiagents.agentfleet.io", ("-A",)),
                (False, "create", "deployments.apps", ("-n", elsewhere)),
                (False, "patch", "aiagents.agentfleet.io/status", ("-n", elsewhere)),
            ],
        )
        SUMMARY.append(f"chart: namespaced operator ServiceAccount, {checks} can-i checks hold")

        # The operator, exactly as the chart's Deployment starts it, with its token.
        args = operator_container(objects)["args"]
        token = cluster.kubectl("create", "token", account, "-n", release_ns).stdout.strip()
        kubeconfig = token_kubeconfig(cluster, token, tmp_path / "operator.kubeconfig")
        OUTPUT.mkdir(exist_ok=True)
        log_path = OUTPUT / "test-chart-operator.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "agentfleet", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                # What the chart's Deployment sets from the downward API: the leader Lease
                # lives in the release namespace, the only one where the Role lets it.
                env={
                    **os.environ,
                    "KUBECONFIG": str(kubeconfig),
                    "POD_NAMESPACE": release_ns,
                    "POD_NAME": f"{release}-operator-0",
                },
            )
        try:
            health = f"http://127.0.0.1:{health_port}/healthz"
            eventually(lambda: healthy(process, health, log_path), timeout=60, what="/healthz")
            agent = yaml.safe_load(
                (ROOT / "manifests" / "examples" / "orchestrator.yaml").read_text()
            )
            agent["metadata"]["namespace"] = watched
            cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(agent))
            name = agent["metadata"]["name"]
            cluster.kubectl(
                "wait", f"--for=condition={c.COND_READY}", f"aia/{name}", "-n", watched,
                "--timeout=120s",
            )  # fmt: skip
            replicas = agent["spec"]["replicas"]
            ready = cluster.kubectl(
                "get", "deployment", name, "-n", watched, "-o", "jsonpath={.status.readyReplicas}"
            ).stdout
            assert ready == str(replicas)
            log_text = log_path.read_text()
            assert "Forbidden" not in log_text and " 403" not in log_text, log_text[-3000:]
        finally:
            process.terminate()
            process.wait(timeout=30)
        SUMMARY.append(f"chart: operator run from `helm install`'s args {args} made {name} Ready")

        # helm upgrade changes what the values say ...
        helm(
            "upgrade", release, str(CHART), "-n", release_ns, "--reuse-values", "--wait",
            "--timeout=180s", "--set", "operator.workers=2,rbac.keda=false",
        )  # fmt: skip
        upgraded = manifest_objects(helm, release, release_ns)
        assert "--workers=2" in operator_container(upgraded)["args"]
        live_args = cluster.kubectl(
            "get", "deployment", "-n", release_ns, "-o",
            "jsonpath={.items[0].spec.template.spec.containers[0].args}",
        ).stdout  # fmt: skip
        assert "--workers=2" in json.loads(live_args)
        assert not can_i(cluster, subject, "create", "scaledobjects.keda.sh", "-n", watched)
        assert can_i(cluster, subject, "create", "deployments.apps", "-n", watched)
        # ... and refuses a bad value, naming it, without touching the release.
        refused = helm(
            "upgrade", release, str(CHART), "-n", release_ns, "--reuse-values",
            "--set", "operator.workers=zero", check=False,
        )  # fmt: skip
        assert refused.returncode != 0 and "/operator/workers" in refused.stderr
        history = json.loads(helm("history", release, "-n", release_ns, "-o", "json").stdout)
        assert [(h["revision"], h["status"]) for h in history] == [
            (1, "superseded"),
            (2, "deployed"),
        ]
    finally:
        helm("uninstall", release, "-n", release_ns, "--wait", "--timeout=120s", check=False)

    # Uninstall removes every object the release made; the CRD (and so the agents) stay.
    left = cluster.kubectl(
        "get", "clusterrole,clusterrolebinding", "-l", f"app.kubernetes.io/instance={release}",
        "-o", "name",
    ).stdout  # fmt: skip
    assert left.strip() == ""
    assert cluster.kubectl(
        "get", "serviceaccount", account, "-n", release_ns, check=False
    ).returncode
    assert cluster.kubectl("get", "rolebinding", "-n", watched, "-o", "name").stdout.strip() == ""
    assert cluster.kubectl("get", "deployment", "-n", release_ns, "-o", "name").stdout.strip() == ""
    assert cluster.kubectl("get", "crd", c.CRD_NAME, "-o", "name").stdout.strip()
    assert cluster.kubectl("get", "aia", name, "-n", watched, "-o", "name").stdout.strip()


# --- every identity of an all-components, cluster-wide install ---------------------------------


@pytest.fixture
def full_release(
    cluster: Cluster, crd: None, helm: Helm, namespaces: list[str]
) -> Iterator[tuple[str, str]]:
    """A cluster-wide install with the node agent and the HTTP API: (release, namespace)."""
    release_ns = namespaces[0]
    release = f"af-{uuid.uuid4().hex[:6]}"
    helm(
        "install", release, str(CHART), "-n", release_ns,
        "--set", "nodeAgent.enabled=true,api.enabled=true",
    )  # fmt: skip
    yield release, release_ns
    helm("uninstall", release, "-n", release_ns, "--wait", "--timeout=120s", check=False)


def test_every_service_account_can_do_its_job_and_nothing_dangerous(
    cluster: Cluster, full_release: tuple[str, str], namespaces: list[str]
) -> None:
    release, release_ns = full_release
    other = namespaces[1]
    prefix = f"system:serviceaccount:{release_ns}:{release}-agentfleet"
    checks = check_matrix(
        cluster, f"{prefix}-operator", operator_matrix(other, "default", release_ns)
    )
    checks += check_matrix(
        cluster,
        f"{prefix}-operator",
        [
            (True, "list", "aiagents.agentfleet.io", ("-A",)),
            (True, "create", "deployments.apps", ("-n", "default")),
            *forbidden_everywhere(other),
        ],
    )
    checks += check_matrix(
        cluster,
        f"{prefix}-node-agent",
        [
            (True, "get", "nodes", ()),
            (True, "patch", "nodes", ()),
            (False, "list", "nodes", ()),
            (False, "delete", "nodes", ()),
            (False, "patch", "nodes/status", ()),
            (True, "create", "leases.coordination.k8s.io", ("-n", release_ns)),
            (True, "update", "leases.coordination.k8s.io", ("-n", release_ns)),
            (False, "create", "leases.coordination.k8s.io", ("-n", other)),
            (False, "patch", "pods", ("-n", other)),
            (False, "list", "aiagents.agentfleet.io", ("-A",)),
            *forbidden_everywhere(other),
        ],
    )
    checks += check_matrix(
        cluster,
        f"{prefix}-api",
        [
            (True, "create", "tokenreviews.authentication.k8s.io", ()),
            (True, "create", "subjectaccessreviews.authorization.k8s.io", ()),
            (True, "create", "aiagents.agentfleet.io", ("-n", other)),
            (True, "patch", "aiagents.agentfleet.io", ("-n", other)),
            (True, "delete", "aiagents.agentfleet.io", ("-n", other)),
            (True, "list", "pods", ("-A",)),
            (True, "list", "nodes", ()),
            (False, "patch", "nodes", ()),
            (True, "list", "leases.coordination.k8s.io", ("-n", release_ns)),
            (False, "list", "leases.coordination.k8s.io", ("-n", other)),
            (False, "create", "deployments.apps", ("-n", other)),
            (False, "patch", "aiagents.agentfleet.io/status", ("-n", other)),
            *forbidden_everywhere(other),
        ],
    )
    SUMMARY.append(
        f"chart: operator, node agent and API ServiceAccounts, {checks} can-i checks hold"
    )


def test_node_agent_may_change_only_its_own_nodes_labels(
    cluster: Cluster, full_release: tuple[str, str], tmp_path: Path
) -> None:
    """RBAC lets the node agent patch any Node; the chart's admission policy narrows that to
    the agentfleet.io/ labels and annotations of the Node named in its token."""
    if not cluster.local:
        pytest.skip("labels real nodes: only on the local control plane")
    release, release_ns = full_release
    account = f"{release}-agentfleet-node-agent"
    own, other = sorted(cluster.kubectl("get", "nodes", "-o", "name").stdout.split())[:2]
    own_name = own.removeprefix("node/")
    uid = cluster.kubectl("get", own, "-o", "jsonpath={.metadata.uid}").stdout
    bound = cluster.kubectl(
        "create", "token", account, "-n", release_ns, "--bound-object-kind=Node",
        f"--bound-object-name={own_name}", f"--bound-object-uid={uid}",
    ).stdout.strip()  # fmt: skip
    as_agent = token_kubeconfig(cluster, bound, tmp_path / "node-agent.kubeconfig")
    unbound = cluster.kubectl("create", "token", account, "-n", release_ns).stdout.strip()
    as_unbound = token_kubeconfig(cluster, unbound, tmp_path / "unbound.kubeconfig")
    label = f"{c.GROUP}/chart-test-{uuid.uuid4().hex[:6]}"

    def kubectl_as(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return cluster.kubectl(f"--kubeconfig={config}", *args, check=False)

    def other_node_refused() -> None:
        proc = kubectl_as(as_agent, "label", other, f"{label}=1")
        assert proc.returncode != 0, proc.stdout
        assert "may change only the Node its Pod runs on" in proc.stderr, proc.stderr

    try:
        eventually(other_node_refused, timeout=60, what="the admission policy to be in force")
        # What the node agent publishes: agentfleet.io/ labels and annotations of its Node.
        for verb in ("label", "annotate"):
            published = kubectl_as(as_agent, verb, own, f"{label}=1")
            assert published.returncode == 0, published.stderr
        # Nothing else there: other keys, taints (spec).
        only_ours = "may change only agentfleet.io/ labels and annotations of its Node"
        foreign = f"example.com/{label.rpartition('/')[2]}"
        for verb in ("label", "annotate"):
            refused = kubectl_as(as_agent, verb, own, f"{foreign}=1")
            assert only_ours in refused.stderr and foreign in refused.stderr, refused.stderr
        taint = kubectl_as(as_agent, "taint", "node", own_name, f"{label}=1:NoSchedule")
        assert only_ours in taint.stderr and "changed: spec" in taint.stderr, taint.stderr
        no_node = kubectl_as(as_unbound, "label", own, f"{label}=2", "--overwrite")
        assert "its token names no Node" in no_node.stderr, no_node.stderr
    finally:
        cluster.kubectl("label", own, f"{label}-", check=False)
        cluster.kubectl("annotate", own, f"{label}-", check=False)


def test_node_agent_may_write_only_its_own_nodes_lease(
    cluster: Cluster, full_release: tuple[str, str], tmp_path: Path
) -> None:
    """RBAC lets the node agent write any Lease of its namespace; the chart's admission policy
    narrows that to the heartbeat of the Node named in its token, so one node's agent can
    neither keep another node fresh nor make it stale."""
    from agentfleet.placement import labels as k

    if not cluster.local:
        pytest.skip("needs the simulated nodes")
    release, release_ns = full_release
    account = f"{release}-agentfleet-node-agent"
    own, other = [
        n.removeprefix("node/")
        for n in sorted(cluster.kubectl("get", "nodes", "-o", "name").stdout.split())[:2]
    ]
    uid = cluster.kubectl("get", "node", own, "-o", "jsonpath={.metadata.uid}").stdout
    bound = cluster.kubectl(
        "create", "token", account, "-n", release_ns, "--bound-object-kind=Node",
        f"--bound-object-name={own}", f"--bound-object-uid={uid}",
    ).stdout.strip()  # fmt: skip
    as_agent = token_kubeconfig(cluster, bound, tmp_path / "node-agent.kubeconfig")
    unbound = cluster.kubectl("create", "token", account, "-n", release_ns).stdout.strip()
    as_unbound = token_kubeconfig(cluster, unbound, tmp_path / "unbound.kubeconfig")

    def lease(name: str, labelled: str, holder: str) -> str:
        return json.dumps(
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": name,
                    "namespace": release_ns,
                    "labels": {k.LEASE_NODE_LABEL: labelled},
                },
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": 40},
            }
        )

    def write(config: Path, body: str) -> subprocess.CompletedProcess[str]:
        return cluster.kubectl(
            f"--kubeconfig={config}", "apply", "--server-side", "--field-manager=test",
            "-f", "-", input=body, check=False,
        )  # fmt: skip

    refusal = "may write only the heartbeat Lease of the Node its Pod runs on"

    def other_nodes_lease_refused() -> None:
        proc = write(as_agent, lease(k.lease_name(other), other, k.lease_holder(other)))
        assert proc.returncode != 0 and refusal in proc.stderr, proc.stderr

    try:
        eventually(other_nodes_lease_refused, timeout=60, what="the lease policy to be in force")
        ok = write(as_agent, lease(k.lease_name(own), own, k.lease_holder(own)))
        assert ok.returncode == 0, ok.stderr
        for name, labelled, holder in [
            (k.lease_name(own), other, k.lease_holder(own)),  # labelled for another node
            (k.lease_name(own), own, k.lease_holder(other)),  # held for another node
            ("my-lease", own, k.lease_holder(own)),  # not named for its node
        ]:
            refused = write(as_agent, lease(name, labelled, holder))
            assert refused.returncode != 0 and refusal in refused.stderr, (name, refused.stderr)
        no_node = write(as_unbound, lease(k.lease_name(own), own, k.lease_holder(own)))
        assert "its token names no Node" in no_node.stderr, no_node.stderr
    finally:
        cluster.kubectl("delete", "lease", k.lease_name(own), "-n", release_ns, check=False)
