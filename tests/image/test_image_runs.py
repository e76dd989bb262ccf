"""The built image runs: podman starts it against the real API server the way the operator's
Deployment runs it (its own user 65532, read-only root filesystem with an empty /tmp, no
capabilities, in-cluster credentials of the least-privilege ServiceAccount), and the operator
in it serves /healthz and reconciles an AIAgent.

podman runs as root here with runc and the cgroupfs manager: crun refuses this sandbox's hybrid
cgroup hierarchy and there is no systemd. Limits are set below the sandbox's hard limits, which
the runtime may not raise (no CAP_SYS_RESOURCE).
"""

from __future__ import annotations

import base64
import json
import os
import resource
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from agentfleet.api import constants as c
from tests.conftest import Cluster, eventually, operator_kubeconfig
from tests.image.oci import OciArchive

pytestmark = pytest.mark.cluster


class Podman:
    """podman with a store private to one test (vfs: no overlay mounts to clean up)."""

    def __init__(self, directory: Path) -> None:
        self.store = directory / "storage"
        self.options = [
            "--root", str(self.store), "--runroot", str(directory / "runroot"),
            "--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager", "cgroupfs",
        ]  # fmt: skip

    def __call__(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(
            ["podman", *self.options, *args], capture_output=True, text=True, timeout=180
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {args[0]} failed: {proc.stderr[-3000:]}")
        return proc.stdout.strip()

    def logs(self, container: str) -> str:
        proc = subprocess.run(["podman", *self.options, "logs", container], capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        return proc.stdout + proc.stderr  # podman replays the container's stderr on its own

    def remove_store(self) -> None:
        mounts = Path("/proc/self/mounts").read_text()
        assert f" {self.store}/" not in mounts, f"{self.store} still has mounts"
        shutil.rmtree(self.store, ignore_errors=True)


@pytest.fixture
def podman() -> Iterator[Podman]:
    missing = [tool for tool in ("podman", "runc") if not shutil.which(tool)]
    if missing:
        pytest.skip(f"cannot run the image: {', '.join(missing)} not installed (apt-get install)")
    if os.geteuid() != 0:
        pytest.skip("cannot run the image: rootless podman needs /etc/subuid ranges; run as root")
    directory = Path(tempfile.mkdtemp(prefix="af-podman-"))  # podman: runroot < 50 characters
    handle = Podman(directory)
    yield handle
    handle("rm", "--all", "--force", check=False)
    handle("rmi", "--all", "--force", check=False)
    handle.remove_store()
    shutil.rmtree(directory, ignore_errors=True)


SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass(frozen=True)
class ServiceAccountMount:
    directory: Path
    server: str


def in_cluster_credentials(cluster: Cluster, directory: Path) -> ServiceAccountMount:
    """What the kubelet mounts into the operator's Pod: token, ca.crt, namespace, readable by
    the image's user. The token is the operator ServiceAccount's (manifests/operator RBAC)."""
    config = json.loads(operator_kubeconfig(cluster).read_text())
    directory.mkdir()
    (directory / "token").write_text(config["users"][0]["user"]["token"])
    ca = config["clusters"][0]["cluster"]["certificate-authority-data"]
    (directory / "ca.crt").write_bytes(base64.b64decode(ca))
    (directory / "namespace").write_text("agentfleet-system")
    for path in (directory, *directory.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return ServiceAccountMount(directory, config["clusters"][0]["cluster"]["server"])


def limit(kind: int) -> str:
    hard = resource.getrlimit(kind)[1]
    value = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    return f"{value}:{value}"


def metric(url: str, name: str) -> float:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def test_the_image_serves_healthz_and_reconciles_an_agent(
    cluster: Cluster, crd: None, namespace: str, image: OciArchive, podman: Podman, tmp_path: Path
) -> None:
    from agentfleet_dev.cluster import free_ports

    service_account = in_cluster_credentials(cluster, tmp_path / "serviceaccount")
    server = urllib.parse.urlsplit(service_account.server)
    metrics_port, health_port = free_ports(2)
    name = f"agentfleet-{uuid.uuid4().hex[:8]}"
    podman(
        "run", "--detach", "--name", name, "--network", "host",
        "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:size=64m",
        "--cap-drop", "all", "--security-opt", "no-new-privileges",
        "--ulimit", f"nofile={limit(resource.RLIMIT_NOFILE)}",
        "--ulimit", f"nproc={limit(resource.RLIMIT_NPROC)}",
        "--volume", f"{service_account.directory}:{SERVICE_ACCOUNT_DIR}:ro",
        "--env", f"KUBERNETES_SERVICE_HOST={server.hostname}",
        "--env", f"KUBERNETES_SERVICE_PORT={server.port}",
        f"oci-archive:{image.path}",
        "run", "--namespace", namespace, "--metrics-address", "127.0.0.1",
        "--metrics-port", str(metrics_port), "--health-port", str(health_port),
    )  # fmt: skip

    def healthy() -> bool:
        state = podman("inspect", "--format", "{{.State.Status}}", name)
        assert state == "running", f"container {state}:\n{podman.logs(name)[-3000:]}"
        try:
            url = f"http://127.0.0.1:{health_port}/healthz"
            return bool(urllib.request.urlopen(url, timeout=2).status == 200)
        except OSError:
            return False

    eventually(healthy, timeout=60, what="/healthz of the operator in the image")

    pid = podman("inspect", "--format", "{{.State.Pid}}", name)
    uids = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("Uid:"))  # fmt: skip
    assert uids.split()[1:] == ["65532"] * 4, uids

    agent = {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": "from-image", "namespace": namespace},
        "spec": {"agentType": "coding", "image": "example.com/coding:1", "replicas": 1},
    }
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(agent))
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"

    def reconciled_by_the_image() -> None:
        assert metric(metrics_url, "controller_runtime_reconcile_total") >= 1
        deployment = cluster.kubectl(
            "get", "deployment", "from-image", "-n", namespace, "-o", "yaml", check=False
        )
        assert deployment.returncode == 0, deployment.stderr
        owner = yaml.safe_load(deployment.stdout)["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"]) == (c.KIND, "from-image")

    eventually(reconciled_by_the_image, timeout=60, what="the image's operator to reconcile")
    logs = podman.logs(name)
    assert "Traceback" not in logs, logs[-3000:]
