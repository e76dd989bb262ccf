"""Every process the chart starts, started by a test: kwok runs no containers, so here podman
runs each container of each workload the chart renders (default values, and every option),
from the built image, with exactly the command, args and env of the rendered manifest, its
volumes, its security context and the ServiceAccount token the kubelet would mount (the chart's
own ServiceAccount, with the chart's own RBAC applied: never cluster-admin), against the local
API server. A container that exits, or never answers one of its probes, fails the test with its
log. Nothing here names a container: a workload added to the chart is started too, and its
probes must answer.

What each agentfleet command must then do is checked by command: the operator (`run`) makes
an AIAgent Ready, the node agent (`node-agent`) publishes its labels on its named kwok Node and
renews its Lease, the HTTP API (`api`) answers an authorised `GET /health` and refuses an
anonymous one.

Isolation from the rest of the suite uses the chart's own values (an `--agent-selector` on a
shard label, fresh `watchNamespaces`), so what runs is still what the chart renders.
"""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from agentfleet.api import constants as c
from agentfleet.placement import labels as k
from tests.conftest import ROOT, SHARD_LABEL, SUMMARY, Cluster, eventually
from tests.image.oci import OciArchive
from tests.image.podman import Podman, podman_store
from tests.image.pods import Context, PodFacts, Run, describe, pod_templates, probe_passes, run_of

pytestmark = pytest.mark.cluster

CHART = ROOT / "charts" / "agentfleet"
ALL_OPTIONS = CHART / "ci" / "all-options-values.yaml"
MONITORING_KINDS = {"ServiceMonitor", "PrometheusRule"}  # need the Prometheus Operator's CRDs
# The API's serving certificate when cert-manager makes it (all options): without cert-manager
# the Secret it would write is generated instead (Install.lookup).
CERT_MANAGER_KINDS = {"Certificate"}
PROBE_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def podman() -> Iterator[Podman]:
    yield from podman_store()


@pytest.fixture(scope="module")
def image_id(podman: Podman, image: OciArchive) -> str:
    return podman.load(image.path)


def helm_binary() -> Path:
    from agentfleet_dev import build

    return build.ensure(build.HELM, lambda m: print(m, file=sys.stderr)) / "bin" / "helm"


def render(*args: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [str(helm_binary()), "template", *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@dataclass
class Install:
    """One rendering of the chart, applied (all but its workloads) to fresh namespaces."""

    cluster: Cluster
    release: str
    namespace: str  # the release's
    watched: list[str]  # where the operator reconciles AIAgents
    shard: str  # the label value that keeps the session's own operator off our agents
    node: str  # a fresh kwok Node the node agent speaks for
    objects: list[dict[str, Any]]
    directory: Path

    def lookup(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        """A ConfigMap or Secret from the rendering, else the cluster. A Secret neither has
        (a TLS Secret the chart expects someone, or cert-manager, to provide) gets a generated
        certificate."""
        for obj in self.objects:
            meta = obj["metadata"]
            if (obj["kind"], meta["name"], meta.get("namespace", namespace)) == (
                kind,
                name,
                namespace,
            ):
                return obj
        found = self.cluster.kubectl("get", kind.lower(), name, "-n", namespace, "-o", "json",
                                     check=False)  # fmt: skip
        if found.returncode == 0:
            return dict(json.loads(found.stdout))
        if kind != "Secret":
            return None
        secret = tls_secret(name, namespace, [f"{self.release}.{namespace}.svc", "localhost"])
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps(secret))
        return secret

    def token(self, account: str, namespace: str, audience: str, seconds: int) -> str:
        """A token of the pod's ServiceAccount that names its Node, as the kubelet's do."""
        uid = self.cluster.kubectl("get", "node", self.node, "-o", "jsonpath={.metadata.uid}")
        args = ["create", "token", account, "-n", namespace, "--bound-object-kind=Node",
                f"--bound-object-name={self.node}", f"--bound-object-uid={uid.stdout}",
                f"--duration={max(seconds, 600)}s"]  # fmt: skip
        if audience:
            args.append(f"--audience={audience}")
        return self.cluster.kubectl(*args).stdout.strip()


def tls_secret(name: str, namespace: str, hosts: list[str]) -> dict[str, Any]:
    """A kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt) with a fresh self-signed cert."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    data = {"tls.crt": pem, "tls.key": private, "ca.crt": pem}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


def served_kinds(cluster: Cluster, group: str) -> set[str]:
    listing = cluster.kubectl("api-resources", f"--api-group={group}", check=False)
    return {line.split()[-1] for line in listing.stdout.splitlines()[1:] if line.strip()}


def create_node(cluster: Cluster, name: str, labels: dict[str, str]) -> None:
    """A simulated CPU node (kwok keeps it Ready), tainted so that no other test's Pods land
    there, labelled to match every nodeSelector of the chart's pods."""
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {**labels, "type": "kwok", "kubernetes.io/hostname": name},
        },
        "spec": {"taints": [{"key": "agentfleet.io/test", "value": name, "effect": "NoSchedule"}]},
        "status": {
            "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "10"},
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "10"},
        },
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(node))


@pytest.fixture(params=["defaults", "all-options"])
def install(request: pytest.FixtureRequest, cluster: Cluster, crd: None,
            tmp_path: Path) -> Iterator[Install]:  # fmt: skip
    suffix = uuid.uuid4().hex[:6]
    release_ns = f"t-rel-{suffix}"
    watched = [f"t-wa-{suffix}", *([f"t-wb-{suffix}"] if request.param == "all-options" else [])]
    shard, release, node = f"chart-{suffix}", f"af-{suffix}", f"chart-{suffix}"
    args = [release, str(CHART), "-n", release_ns]
    if request.param == "all-options":
        args += ["-f", str(ALL_OPTIONS), "--set", f"watchNamespaces={{{','.join(watched)}}}"]
        args += ["--set", f"grafanaDashboard.namespace={release_ns}"]
    else:  # cluster-wide, as by default; only our shard's agents
        args += ["--set", f"operator.agentSelector={SHARD_LABEL}={shard}"]
    objects = render(*args)
    handle = Install(cluster, release, release_ns, watched, shard, node, objects, tmp_path)
    manifest = ""
    try:  # cleaned up however far it got (a failed apply left namespaces behind that made
        # later tests wait for them)
        for name in (release_ns, *watched):
            cluster.kubectl("create", "namespace", name)
        selectors: dict[str, str] = {}
        for _, template in pod_templates(objects):
            selectors.update(template["spec"].get("nodeSelector") or {})
        create_node(cluster, node, selectors)
        workloads = [id(obj) for obj, _ in pod_templates(objects)]
        unserved = (MONITORING_KINDS - served_kinds(cluster, "monitoring.coreos.com")) | (
            CERT_MANAGER_KINDS - served_kinds(cluster, "cert-manager.io")
        )
        applied = [o for o in objects if id(o) not in workloads and o["kind"] not in unserved]
        manifest = yaml.safe_dump_all(applied)
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=helm",
                        "-f", "-", input=manifest)  # fmt: skip
        yield handle
    finally:
        if manifest:
            cluster.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-",
                            input=manifest, check=False)  # fmt: skip
        cluster.kubectl("delete", "namespace", release_ns, *watched, "--wait=false",
                        "--ignore-not-found", check=False)  # fmt: skip
        cluster.kubectl("delete", "node", node, "--wait=false", "--ignore-not-found",
                        check=False)  # fmt: skip


class ContainerStopped(Exception):
    """A container of the chart exited (or never started): the test fails with its log."""


def agentfleet_command(run: Run) -> str:
    """`run`, `node-agent`, `api`, ...: the agentfleet subcommand the container runs."""
    if not run.command or Path(run.command[0]).name != "agentfleet":
        return ""
    return next((arg for arg in run.command[1:] if not arg.startswith("-")), "")


def api_server(cluster: Cluster) -> tuple[int, bytes]:
    """The local API server's port and CA, as the kubeconfig has them."""
    config = json.loads(
        cluster.kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout
    )
    entry = config["clusters"][0]["cluster"]
    server = urlsplit(entry["server"])
    assert server.hostname in ("127.0.0.1", "localhost"), (
        f"the containers reach the API server through the host's loopback; {server} is not"
    )
    return int(server.port or 443), base64.b64decode(entry["certificate-authority-data"])


def test_every_container_the_chart_starts_runs_from_the_image(
    cluster: Cluster, install: Install, image: OciArchive, image_id: str, podman: Podman
) -> None:
    from agentfleet_dev.cluster import free_ports

    port, ca = api_server(cluster)

    def free_port() -> int:
        return free_ports(1)[0]

    runs: list[tuple[Run, PodFacts]] = []
    for workload, template in pod_templates(install.objects):
        spec, meta = template["spec"], template.get("metadata") or {}
        short = uuid.uuid4().hex[:5]
        pod = PodFacts(
            name=f"{workload['metadata']['name']}-{short}",
            namespace=workload["metadata"].get("namespace", install.namespace),
            uid=str(uuid.uuid4()),
            node_name=install.node,
            service_account=spec.get("serviceAccountName") or "default",
            labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
            node_allocatable={"cpu": "8", "memory": "32Gi"},
        )
        for kind, containers in (("init", spec.get("initContainers")), ("", spec["containers"])):
            for container in containers or []:
                directory = install.directory / pod.name / container["name"]
                context = Context(pod, install.lookup, install.token, ca, directory)
                run = run_of(spec, container, context, image_id, image.config, port,
                             free_port, f"{pod.name}-{container['name']}")  # fmt: skip
                if kind == "init":  # runs to completion before the pod's containers start
                    argv = [a for a in run.argv if a != "--detach"]
                    podman("run", *argv, timeout=300)
                    continue
                podman("run", *run.argv)
                runs.append((run, pod))
    assert runs, "the chart rendered no container"

    def log_of(run: Run) -> str:
        return f"\n--- {run.name}: {describe(run)}\n{podman.logs(run.name)[-4000:]}"

    def running(run: Run) -> None:
        state = podman.state(run.name)
        if state != "running":  # not an AssertionError: waiting longer would not help
            raise ContainerStopped(f"{run.name} is {state}:{log_of(run)}")

    for run, _ in runs:

        def answers(run: Run = run) -> bool:
            running(run)
            return all(probe_passes(run, probe) for probe in run.probes.values())

        try:
            eventually(answers, timeout=PROBE_TIMEOUT, interval=1, what=f"{run.name}'s probes")
        except AssertionError as error:
            raise AssertionError(f"{error}{log_of(run)}") from None
        if run.user is not None:
            assert podman.uids(run.name) == [str(run.user)] * 4

    checked = []
    for run, pod in runs:
        command = agentfleet_command(run)
        check = CHECKS.get(command)
        if check is None:
            SUMMARY.append(f"chart processes: {run.name} ({describe(run)}) answers its probes; "
                           "no behaviour check for it yet")  # fmt: skip
            continue
        try:
            check(install, run, pod)
        except AssertionError as error:
            raise AssertionError(f"{command}: {error}{log_of(run)}") from None
        checked.append(command)
    for run, _ in runs:
        running(run)
        logs = podman.logs(run.name)
        assert "Traceback" not in logs, log_of(run)
    SUMMARY.append(
        f"chart processes ({install.release}): {len(runs)} containers from the image answered "
        f"their probes; checked {', '.join(checked)}"
    )


# --- what each agentfleet command must do ---------------------------------------------------


def check_operator(install: Install, run: Run, pod: PodFacts) -> None:
    """It reconciles an AIAgent until Ready, as the chart's ServiceAccount."""
    cluster, namespace = install.cluster, install.watched[0]
    name = f"from-{install.shard}"
    agent = {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {SHARD_LABEL: install.shard}},
        "spec": {"agentType": "coding", "image": "example.com/coding:1", "replicas": 1},
    }  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(agent))
    waited = cluster.kubectl("wait", f"--for=condition={c.COND_READY}", f"aia/{name}",
                             "-n", namespace, "--timeout=100s", check=False)  # fmt: skip
    status = cluster.kubectl("get", f"aia/{name}", "-n", namespace, "-o",
                             "jsonpath={.status}").stdout  # fmt: skip
    assert waited.returncode == 0, f"{name} not Ready: {status}"
    owner = json.loads(cluster.kubectl("get", "deployment", name, "-n", namespace, "-o",
                       "jsonpath={.metadata.ownerReferences[0]}").stdout)  # fmt: skip
    assert (owner["kind"], owner["name"]) == (c.KIND, name)


def check_node_agent(install: Install, run: Run, pod: PodFacts) -> None:
    """Its labels land on its named kwok Node and its heartbeat Lease is renewed."""
    cluster = install.cluster

    def labelled() -> None:
        labels = json.loads(cluster.kubectl("get", "node", pod.node_name, "-o",
                            "jsonpath={.metadata.labels}").stdout)  # fmt: skip
        assert f"{c.GROUP}/cpu.count" in labels, labels

    eventually(labelled, timeout=60, what=f"the node agent's labels on {pod.node_name}")

    def lease() -> dict[str, Any]:
        found = cluster.kubectl("get", "lease", k.lease_name(pod.node_name), "-n",
                                pod.namespace, "-o", "json", check=False)  # fmt: skip
        assert found.returncode == 0, found.stderr
        return dict(json.loads(found.stdout)["spec"])

    first = eventually(lease, timeout=60, what="the heartbeat Lease")
    assert pod.node_name in first["holderIdentity"]

    def renewed() -> None:
        assert lease()["renewTime"] != first["renewTime"]

    eventually(renewed, timeout=90, interval=1, what="the heartbeat Lease to be renewed")


def check_api(install: Install, run: Run, pod: PodFacts) -> None:
    """An authorised caller gets /health; a caller without a token gets 401, and so does one
    whose token is for another audience where the API names its own (--token-audience)."""
    cluster, namespace = install.cluster, install.watched[0]
    caller = "t-caller"
    cluster.kubectl("create", "serviceaccount", caller, "-n", namespace)
    cluster.kubectl("create", "role", caller, "-n", namespace, "--verb=get,list",
                    f"--resource={c.PLURAL}.{c.GROUP}")  # fmt: skip
    cluster.kubectl("create", "rolebinding", caller, "-n", namespace, f"--role={caller}",
                    f"--serviceaccount={namespace}:{caller}")  # fmt: skip
    audience = next((arg.split("=", 1)[1] for arg in run.command
                     if arg.startswith("--token-audience=")), "")  # fmt: skip

    def token_for(*audiences: str) -> str:
        args = ["create", "token", caller, "-n", namespace]
        return cluster.kubectl(*args, *(f"--audience={a}" for a in audiences)).stdout.strip()

    token = token_for(*([audience] if audience else []))
    probe = run.probes.get("readiness") or next(iter(run.probes.values()), {})
    get = probe.get("httpGet") or {"port": "http"}
    scheme = str(get.get("scheme", "HTTP")).lower()
    url = f"{scheme}://127.0.0.1:{run.ports[str(get['port'])]}/health?namespace={namespace}"

    def ask(bearer: str | None) -> tuple[int, str]:
        request = urllib.request.Request(url)
        if bearer:
            request.add_header("Authorization", f"Bearer {bearer}")
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(request, timeout=10, context=insecure) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def authorised() -> dict[str, Any]:
        status, body = ask(token)
        assert status == 200, (status, body)  # RBAC of a new binding may take a moment
        return dict(json.loads(body))

    assert eventually(authorised, timeout=30, what="an authorised GET /health")["status"] == "ok"
    assert ask(None)[0] == 401
    if audience:
        assert ask(token_for())[0] == 401  # the API server's own audience only


CHECKS: dict[str, Callable[[Install, Run, PodFacts], None]] = {
    "run": check_operator,
    "node-agent": check_node_agent,
    "api": check_api,
}
