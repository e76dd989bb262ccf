"""Fixtures shared by every test directory.

Tests marked `cluster` run against a real Kubernetes API server: the one $KUBECONFIG points
at if it is set (kind, k3d, a cloud cluster), otherwise a local control plane that this
session builds or reuses, starts, and stops at the end.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
SHARD_LABEL = "agentfleet.io/shard"
OUTPUT = ROOT / "_output"
T = TypeVar("T")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="Rewrite tests/unit/golden/*.yaml from the renderers instead of comparing.",
    )


SUMMARY: list[str] = []  # facts about the run, printed after the test results

# CI (.ci/run exports AGENTFLEET_CI=1) installs everything the tests need, so a skipped test
# there means something is not tested: it fails the run, unless its node id starts with a key
# of this list, whose value says why skipping it in CI is right. Keep it short.
CI_ALLOWED_SKIPS: dict[str, str] = {}
SKIPPED: list[tuple[str, str]] = []  # (node id, reason) of every skipped test


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        SKIPPED.append((report.nodeid, reason))


def unexpected_skips() -> list[tuple[str, str]]:
    if not os.environ.get("AGENTFLEET_CI"):
        return []
    return [
        (nodeid, reason)
        for nodeid, reason in SKIPPED
        if not any(nodeid.startswith(allowed) for allowed in CI_ALLOWED_SKIPS)
    ]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in SUMMARY:
        terminalreporter.write_line(line)
    unexpected = unexpected_skips()
    if unexpected:
        terminalreporter.write_line(
            f"{len(unexpected)} tests skipped in CI (AGENTFLEET_CI=1) and not in "
            "tests/conftest.py CI_ALLOWED_SKIPS: install what they need, or list them with why",
            red=True,
        )
        for nodeid, reason in unexpected:
            terminalreporter.write_line(f"  {nodeid}: {reason}", red=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    passed = (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
    if unexpected_skips() and exitstatus in passed:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def eventually(
    check: Callable[[], T], timeout: float = 90, interval: float = 0.25, what: str = "condition"
) -> T:
    """Poll `check` until it neither raises AssertionError nor returns False; return its result."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result is not False:
                return result
        except AssertionError as error:
            last = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}: {last}")


@dataclass
class Cluster:
    kubeconfig: str
    kubectl_path: str
    local: bool  # our local control plane (kwok nodes from tests/e2e/nodes)

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.kubectl_path, f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc

    @functools.cached_property
    def client(self) -> Any:
        """One API client for the session (not a kubeconfig read and a pool per call)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=self.kubeconfig)

    def api(self) -> Any:
        return self.client


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    from agentfleet_dev import build
    from agentfleet_dev.cluster import LocalCluster

    tools = build.toolchain(lambda m: print(m, file=sys.stderr))
    kubectl = str(tools.bin["kubectl"])
    existing = os.environ.get("KUBECONFIG")
    if existing and Path(existing).exists():
        # `make cluster-up` (agentfleet dev cluster) keeps its state beside its kubeconfig:
        # that is the local control plane too, with its simulated nodes.
        yield Cluster(existing, kubectl, local=(Path(existing).parent / "state.json").exists())
        return
    # Two checkouts (or two sessions) on one machine each set their own directory.
    directory = Path(os.environ.get("AGENTFLEET_TEST_CLUSTER_DIR", OUTPUT / "test-cluster"))
    local = LocalCluster(directory, lambda m: print(m, file=sys.stderr))
    state = local.up(nodes=sorted((ROOT / "tests/e2e/nodes").glob("*.yaml")), keda=True)
    SUMMARY.append(f"local control plane up in {state.startup_seconds} s ({state.server})")
    try:
        yield Cluster(state.kubeconfig, kubectl, local=True)
    finally:
        local.down()


@pytest.fixture(scope="session")
def crd(cluster: Cluster) -> None:
    crd_file = ROOT / "crds" / "aiagents.agentfleet.io.yaml"
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd_file))
    cluster.kubectl(
        "wait", "--for=condition=Established", "crd/aiagents.agentfleet.io", "--timeout=60s"
    )


WRITE_VERBS = ["create", "update", "patch", "delete", "deletecollection"]


class ServerWrites:
    """The writes (create, update, patch, delete) the API server itself dispatched for one
    ServiceAccount: a FlowSchema matches exactly that identity's write requests, and the API
    server counts what it dispatches per FlowSchema
    (apiserver_flowcontrol_dispatched_requests_total{flow_schema}). apiserver_request_total
    has no user label; this is the same count, by identity, and it sees what the operator's
    own counter would miss (a client that bypasses it, kopf's own writes)."""

    def __init__(self, cluster: Cluster, namespace: str, account: str) -> None:
        self.cluster = cluster
        self.user = f"system:serviceaccount:{namespace}:{account}"
        self.name = f"agentfleet-test-writes-{account}"
        schema = {
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "FlowSchema",
            "metadata": {"name": self.name},
            "spec": {
                # Before the built-in service-accounts schema (9000); the same concurrency.
                "matchingPrecedence": 500,
                "priorityLevelConfiguration": {"name": "workload-low"},
                "distinguisherMethod": {"type": "ByUser"},
                "rules": [
                    {
                        "subjects": [
                            {
                                "kind": "ServiceAccount",
                                "serviceAccount": {"name": account, "namespace": namespace},
                            }
                        ],
                        "resourceRules": [
                            {
                                "verbs": WRITE_VERBS,
                                "apiGroups": ["*"],
                                "resources": ["*"],
                                "namespaces": ["*"],
                                "clusterScope": True,
                            }
                        ],
                    }
                ],
            },
        }
        cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(schema))

        def in_force() -> bool:
            before = self()
            # A SelfSubjectAccessReview is a create, classified as the impersonated user.
            cluster.kubectl(f"--as={self.user}", "auth", "can-i", "get", "pods", check=False)
            return self() > before

        eventually(in_force, timeout=60, interval=1, what=f"FlowSchema {self.name} in force")

    def __call__(self) -> float:
        text = self.cluster.kubectl("get", "--raw", "/metrics").stdout
        selector = f'flow_schema="{self.name}"'
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("apiserver_flowcontrol_dispatched_requests_total{")
            and selector in line
        )

    def remove(self) -> None:
        self.cluster.kubectl("delete", "flowschema", self.name, "--ignore-not-found", check=False)


@dataclass
class Operator:
    metrics_url: str
    log_path: Path
    process: subprocess.Popen[bytes]
    health_url: str = ""
    # The API server's count of this operator's identity's writes (the session operator's).
    server_writes: ServerWrites | None = None

    def health(self) -> tuple[int, str]:
        """(HTTP status, body) of /healthz, or (0, error) when it does not answer."""
        try:
            with urllib.request.urlopen(self.health_url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError as error:
            return 0, str(error)

    def ready(self) -> dict[str, Any]:
        """/readyz's JSON (its status and whether this replica leads), {} when it does not
        answer."""
        url = self.health_url.replace("/healthz", "/readyz")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as error:
            return dict(json.loads(error.read() or b"{}"))
        except (OSError, ValueError):
            return {}

    def leads(self) -> bool:
        return self.ready().get("leader") is True

    def healthy(self) -> bool:
        assert self.process.poll() is None, f"operator exited:\n{self.log_path.read_text()[-3000:]}"
        return self.health()[0] == 200

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = urllib.request.urlopen(self.metrics_url, timeout=5).read().decode()
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def total(self, family: str, /, **labels: str) -> float:
        return sum(
            value
            for (metric, tags), value in self.metrics().items()
            if metric == family and all((k, v) in tags for k, v in labels.items())
        )

    def writes(self) -> float:
        """What the operator counted itself (agentfleet_api_writes_total)."""
        return self.total("agentfleet_api_writes_total")

    def writes_seen_by_the_api_server(self) -> float:
        assert self.server_writes is not None, "only the session operator is counted"
        return self.server_writes()

    def reconciles(self) -> float:
        return self.total("controller_runtime_reconcile_total")

    def settled(self) -> bool:
        """Queue empty, no reconcile running."""
        depth = self.total("workqueue_depth", name="aiagent")
        return depth == 0 and self.total("controller_runtime_active_workers") == 0

    def wait_for_a_quiet_reconcile(
        self, poke: Callable[[], object] | None = None, reconciles: int = 1
    ) -> None:
        """After `poke` (edits that make the operator look again; None: wait for the resync),
        wait for the reconciles that would have written: at least `reconciles` of them, the
        last one finished with nothing left to do (result=success, not requeue_after), and an
        idle queue. Negative checks ("no write happened") come after this, never after a
        fixed sleep."""
        total = self.reconciles()
        before = self.total("controller_runtime_reconcile_total", result="success")
        if poke is not None:
            poke()

        def quiet() -> bool:
            done = self.total("controller_runtime_reconcile_total", result="success") > before
            return done and self.reconciles() >= total + reconciles and self.settled()

        eventually(quiet, timeout=60, what="a reconcile with nothing left to do")


OPERATOR_ACCOUNT = "agentfleet-operator"


def operator_kubeconfig(
    cluster: Cluster,
    server: str | None = None,
    name: str = "operator",
    service_account: str = OPERATOR_ACCOUNT,
) -> Path:
    """A kubeconfig with the token of the operator's own ServiceAccount from manifests/operator,
    so that the tests fail if its RBAC lacks a permission the operator uses. `server` points
    it elsewhere (a proxy) with the same CA. Another `service_account` gets exactly the same
    roles: one identity per replica, so the API server can tell their writes apart."""
    manifests = ROOT / "manifests" / "operator"
    cluster.kubectl(
        "apply", "-f", str(manifests / "namespace.yaml"), "-f", str(manifests / "rbac.yaml")
    )
    if service_account != OPERATOR_ACCOUNT:
        cluster.kubectl("apply", "-f", "-", input=_same_roles(service_account))
    token = cluster.kubectl(
        "create", "token", service_account, "-n", "agentfleet-system", "--duration=6h"
    ).stdout.strip()
    admin = json.loads(
        cluster.kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout
    )
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "operator",
        "clusters": [
            {
                "name": "cluster",
                "cluster": {
                    **admin["clusters"][0]["cluster"],
                    **({"server": server} if server else {}),
                },
            }
        ],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [
            {"name": "operator", "context": {"cluster": "cluster", "user": service_account}}
        ],
    }
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / f"{name}.kubeconfig"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def _same_roles(service_account: str) -> str:
    """A ServiceAccount bound to the operator's ClusterRole and Role (manifests/operator)."""
    namespace = "agentfleet-system"
    subject = {"kind": "ServiceAccount", "name": service_account, "namespace": namespace}
    objects = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": service_account, "namespace": namespace},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": service_account},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": OPERATOR_ACCOUNT,
            },
            "subjects": [subject],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": service_account, "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": OPERATOR_ACCOUNT,
            },
            "subjects": [subject],
        },
    ]
    return "\n---\n".join(json.dumps(o) for o in objects)


def start_operator(
    kubeconfig: Path,
    *args: str,
    name: str = "test-operator",
    wait: bool = True,
    env: dict[str, str] | None = None,
) -> Operator:
    """Run `agentfleet run` as a subprocess with this kubeconfig, extra flags and extra
    environment (POD_NAME, say); wait until its /healthz answers 200."""
    from agentfleet_dev.cluster import free_ports

    metrics_port, health_port = free_ports(2)
    OUTPUT.mkdir(exist_ok=True)
    log_path = OUTPUT / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentfleet",
                "run",
                "--verbose",
                "--metrics-address",
                "127.0.0.1",
                "--metrics-port",
                str(metrics_port),
                "--health-address",
                "127.0.0.1",
                "--health-port",
                str(health_port),
                *args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "KUBECONFIG": str(kubeconfig), **(env or {})},
        )
    handle = Operator(
        f"http://127.0.0.1:{metrics_port}/metrics",
        log_path,
        process,
        f"http://127.0.0.1:{health_port}/healthz",
    )
    if wait:
        eventually(handle.healthy, timeout=60, what=f"{name}'s /healthz")
    return handle


@pytest.fixture(scope="session")
def operator(cluster: Cluster, crd: None) -> Iterator[Operator]:
    counted = ServerWrites(cluster, "agentfleet-system", "agentfleet-operator")
    handle = start_operator(
        operator_kubeconfig(cluster),
        # Every agent is reconciled again every ~10 s, so each zero-write test also proves
        # that a resync of an unchanged agent writes nothing.
        "--resync-seconds",
        "10",
        # Agents labelled with a shard belong to the operators some tests start themselves.
        "--agent-selector",
        f"!{SHARD_LABEL}",
    )
    handle.server_writes = counted
    try:
        yield handle
    finally:
        handle.stop()
        counted.remove()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def wait_for_other_test_namespaces_gone(cluster: Cluster, mine: str) -> None:
    """Tests that measure the operator's writes must not count another test's teardown."""

    def alone() -> None:
        names = cluster.kubectl("get", "namespaces", "-o", "name").stdout.split()
        others = [n for n in names if n.startswith("namespace/t-") and n != f"namespace/{mine}"]
        assert not others, others

    eventually(alone, timeout=120, what="other test namespaces to be deleted")
