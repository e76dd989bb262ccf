"""The node agent against a real API server: labels land on a kwok node, the heartbeat Lease
is created and renewed, nothing is written when nothing changed, and the placement inventory
reads all of it back. The agent runs with the least-privilege RBAC it documents."""

from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from agentfleet.kube.client import Kube, Target, connect
from agentfleet.nodeagent import publish
from agentfleet.nodeagent.detect import Capabilities, GPUInfo
from agentfleet.placement import Inventory, NodeInventory, heartbeat_of
from agentfleet.placement import labels as k
from tests.conftest import OUTPUT, Cluster, eventually

pytestmark = pytest.mark.cluster

H100 = "NVIDIA H100 80GB HBM3"


def capabilities(used_mib: tuple[int, int] = (0, 0), gpus: bool = True) -> Capabilities:
    found = tuple(GPUInfo(i, H100, f"GPU-{i}", 81559, used) for i, used in enumerate(used_mib))
    return Capabilities(192, 2048 * 1024, 1000, "linux", "x86_64", found if gpus else None)


class FixedGPUs:
    def gpus(self) -> tuple[list[GPUInfo] | None, list[str]]:
        return list(capabilities().gpus or ()), []


class FixedHost:
    def cpu_count(self) -> int:
        return 192

    def memory_bytes(self) -> int:
        return 2048 * 2**30

    def disk_bytes(self, path: str) -> int:
        return 1000 * 2**30


def get(cluster: Cluster, *args: str) -> dict[str, Any]:
    return dict(json.loads(cluster.kubectl("get", *args, "-o", "json").stdout))


@pytest.fixture
def kwok_node(cluster: Cluster) -> Iterator[str]:
    """A fresh simulated H100 node (kwok keeps it Ready), deleted afterwards."""
    name = f"na-{uuid.uuid4().hex[:8]}"
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
                "nvidia.com/gpu.count": "2",
                "nvidia.com/gpu.memory": "81559",
                "nvidia.com/gpu.replicas": "1",
                "nvidia.com/gpu.sharing-strategy": "none",
            },
        },
        # Not schedulable for anyone else's test Pods.
        "spec": {"taints": [{"key": "agentfleet.io/test", "value": name, "effect": "NoSchedule"}]},
        "status": {
            "allocatable": {"cpu": "192", "memory": "2Ti", "pods": "10", "nvidia.com/gpu": "2"},
            "capacity": {"cpu": "192", "memory": "2Ti", "pods": "10", "nvidia.com/gpu": "2"},
        },
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(node))
    yield name
    cluster.kubectl("delete", "node", name, "--wait=false", check=False)


@pytest.fixture
def agent_kubeconfig(cluster: Cluster, namespace: str) -> Iterator[Path]:
    """A kubeconfig for a ServiceAccount with only what the node agent needs: get and patch
    Nodes; create and patch Leases in its namespace."""
    suffix = namespace
    rbac = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "node-agent", "namespace": namespace},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": f"node-agent-{suffix}"},
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"node-agent-{suffix}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"node-agent-{suffix}",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "node-agent", "namespace": namespace}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "node-agent", "namespace": namespace},
            "rules": [
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "verbs": ["create", "patch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "node-agent", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "node-agent",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "node-agent", "namespace": namespace}],
        },
    ]
    cluster.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": rbac})
    )
    token = cluster.kubectl(
        "create", "token", "node-agent", "-n", namespace, "--duration=1h"
    ).stdout.strip()
    admin = json.loads(
        cluster.kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout
    )
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "node-agent",
        "clusters": [{"name": "cluster", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": "node-agent", "user": {"token": token}}],
        "contexts": [
            {"name": "node-agent", "context": {"cluster": "cluster", "user": "node-agent"}}
        ],
    }
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / f"node-agent-{namespace}.kubeconfig"
    path.write_text(json.dumps(kubeconfig))
    path.chmod(0o600)
    yield path
    path.unlink(missing_ok=True)
    cluster.kubectl("delete", "clusterrolebinding,clusterrole", f"node-agent-{suffix}", check=False)


@pytest_asyncio.fixture(loop_scope="function")  # the loop the tests run in
async def api(agent_kubeconfig: Path) -> AsyncIterator[Kube]:
    async with await connect(Target(kubeconfig=str(agent_kubeconfig))) as kube:
        yield kube


def applies(kind: str) -> float:
    """Server-side applies of `kind` this process sent (what agentfleet_api_writes_total
    counts for every write through kube/client.py)."""
    labels = {"verb": "apply", "kind": kind}
    return REGISTRY.get_sample_value("agentfleet_api_writes_total", labels) or 0.0


def our_apply_time(cluster: Cluster, name: str) -> str | None:
    """When our field manager last changed the Node (kubectl hides managedFields by default)."""
    node = get(cluster, "node", name, "--show-managed-fields")
    for entry in node["metadata"].get("managedFields") or []:
        if entry["manager"] == k.NODE_AGENT_MANAGER:
            return str(entry["time"])
    return None


async def test_labels_land_on_the_node_and_placement_reads_them(
    cluster: Cluster, kwok_node: str, namespace: str, api: Kube
) -> None:
    publisher = publish.NodePublisher(api, kwok_node, namespace=namespace)
    await publisher.heartbeat()
    assert await publisher.publish(capabilities(used_mib=(4000, 0)))

    node = get(cluster, "node", kwok_node)
    labels = node["metadata"]["labels"]
    assert labels["agentfleet.io/gpu.count"] == "2"
    assert labels["agentfleet.io/gpu.memory"] == "81559"
    assert labels["agentfleet.io/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert labels["agentfleet.io/cpu.count"] == "192"
    gpus = json.loads(node["metadata"]["annotations"]["agentfleet.io/gpus"])
    assert [(g["index"], g["usedMiB"]) for g in gpus] == [(0, 4096), (1, 0)]
    assert labels["nvidia.com/gpu.count"] == "2"  # GPU Feature Discovery's labels untouched

    def ready_in_inventory() -> NodeInventory:
        now = datetime.datetime.now(datetime.UTC)
        lease = get(cluster, "lease", k.lease_name(kwok_node), "-n", namespace)
        entry = Inventory.of([get(cluster, "node", kwok_node)], now, [lease]).nodes.get(kwok_node)
        assert entry is not None, "node not eligible yet"
        return entry

    entry = eventually(ready_in_inventory, timeout=60, what="kwok to report the node Ready")
    assert [(g.memory_mib, g.used_mib) for g in entry.gpus] == [(81559, 4096), (81559, 0)]


async def test_nothing_is_written_when_nothing_changed(
    cluster: Cluster, kwok_node: str, namespace: str, api: Kube
) -> None:
    before = applies("Node")
    first = publish.NodePublisher(api, kwok_node, namespace=namespace)
    assert await first.publish(capabilities())
    written_at = our_apply_time(cluster, kwok_node)
    assert written_at is not None
    await asyncio.sleep(1.1)  # managedFields times have 1 s resolution

    assert not await first.publish(capabilities())  # remembered: not even a read
    restarted = publish.NodePublisher(api, kwok_node, namespace=namespace)
    assert not await restarted.publish(capabilities())  # read, compared, not written
    assert applies("Node") - before == 1
    assert our_apply_time(cluster, kwok_node) == written_at

    # Used VRAM is published in 256 MiB steps: jitter inside a step is not worth a write.
    assert await restarted.publish(capabilities(used_mib=(10, 0)))  # 0 -> 256
    assert not await restarted.publish(capabilities(used_mib=(200, 0)))  # still 256
    assert await restarted.publish(capabilities(used_mib=(1000, 0)))  # 1024
    # GPUs that can no longer be seen are not "zero GPUs": their keys go away.
    assert await restarted.publish(capabilities(gpus=False))
    labels = get(cluster, "node", kwok_node)["metadata"]["labels"]
    assert "agentfleet.io/gpu.count" not in labels and labels["agentfleet.io/cpu.count"] == "192"
    assert applies("Node") - before == 1 + 3


async def test_someone_elses_edit_is_repaired_on_resync(
    cluster: Cluster, kwok_node: str, namespace: str, api: Kube
) -> None:
    publisher = publish.NodePublisher(api, kwok_node, namespace=namespace, resync_seconds=0)
    assert await publisher.publish(capabilities())
    cluster.kubectl("label", "node", kwok_node, "agentfleet.io/gpu.count=7", "--overwrite")
    assert await publisher.publish(capabilities())
    labels = get(cluster, "node", kwok_node)["metadata"]["labels"]
    assert labels["agentfleet.io/gpu.count"] == "2"


async def test_lease_is_created_renewed_and_goes_with_the_node(
    cluster: Cluster, kwok_node: str, namespace: str, api: Kube
) -> None:
    publisher = publish.NodePublisher(api, kwok_node, namespace=namespace, lease_seconds=20)
    start = datetime.datetime.now(datetime.UTC).replace(microsecond=250000)
    await publisher.heartbeat(start)
    lease = get(cluster, "lease", k.lease_name(kwok_node), "-n", namespace)
    node = get(cluster, "node", kwok_node)
    assert heartbeat_of(lease) == (start, 20)
    assert lease["spec"]["holderIdentity"] == f"agentfleet-node-agent/{kwok_node}"
    assert lease["metadata"]["labels"][k.LEASE_NODE_LABEL] == kwok_node
    assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]

    later = start + datetime.timedelta(seconds=5)
    await publisher.heartbeat(later)
    lease = get(cluster, "lease", k.lease_name(kwok_node), "-n", namespace)
    assert heartbeat_of(lease) == (later, 20)

    # Placement: fresh until renewTime + 20 s, then stale.
    await publisher.publish(capabilities())

    def labelled_and_ready() -> dict[str, Any]:
        labelled = get(cluster, "node", kwok_node)
        fresh = Inventory.of([labelled], later + datetime.timedelta(seconds=19), [lease])
        assert kwok_node in fresh.nodes, fresh.ineligible.get(kwok_node)
        return labelled

    labelled = eventually(labelled_and_ready, timeout=60, what="the node Ready and fresh")
    stale = Inventory.of([labelled], later + datetime.timedelta(seconds=21), [lease])
    assert kwok_node not in stale.nodes
    assert stale.ineligible[kwok_node].reason == "stale heartbeat"

    cluster.kubectl("delete", "node", kwok_node)

    def lease_collected() -> None:
        found = cluster.kubectl(
            "get", "lease", k.lease_name(kwok_node), "-n", namespace, check=False
        )
        assert found.returncode != 0, "Lease still there"

    eventually(lease_collected, timeout=60, what="the garbage collector to delete the Lease")


async def test_run_loop_heartbeats_every_tick_and_publishes_once(
    cluster: Cluster, kwok_node: str, namespace: str, api: Kube
) -> None:
    nodes, leases = applies("Node"), applies("Lease")
    stop = asyncio.Event()
    task = asyncio.create_task(
        publish.run(
            api,
            kwok_node,
            interval=0.3,
            namespace=namespace,
            host=FixedHost(),
            gpus=FixedGPUs(),
            stop=stop,
        )
    )
    await asyncio.sleep(1.5)
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert applies("Lease") - leases >= 3  # a heartbeat every tick
    assert applies("Node") - nodes == 1  # the labels once
    lease = get(cluster, "lease", k.lease_name(kwok_node), "-n", namespace)
    renewed, _ = heartbeat_of(lease)
    assert renewed is not None
    assert datetime.datetime.now(datetime.UTC) - renewed < datetime.timedelta(seconds=5)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_node_agent_command_publishes_heartbeats_and_answers_its_probes(
    cluster: Cluster, kwok_node: str, namespace: str, agent_kubeconfig: Path
) -> None:
    """`agentfleet node-agent` as the chart starts it (NODE_NAME and POD_NAMESPACE from the
    downward API), with the node agent's own least-privilege identity: the command exists,
    publishes the node's labels, renews its Lease and answers /healthz and /readyz."""
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    port = free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(agent_kubeconfig),
        "NODE_NAME": kwok_node,
        "POD_NAMESPACE": namespace,
    }
    command = [
        sys.executable, "-m", "agentfleet", "node-agent", "--node-name", kwok_node,
        "--interval", "1", "--lease-seconds", "10",
        "--health-address", "127.0.0.1", "--health-port", str(port),
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:

        def ready() -> bool:
            assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        eventually(ready, timeout=30, what="the node agent's /readyz")
        lease = get(cluster, "lease", k.lease_name(kwok_node), "-n", namespace)
        assert lease["metadata"]["labels"][k.LEASE_NODE_LABEL] == kwok_node
        first, _ = heartbeat_of(lease)
        labels = get(cluster, "node", kwok_node)["metadata"]["labels"]
        assert int(labels[k.AGENT_CPU_COUNT]) >= 1

        def renewed() -> bool:
            again, _ = heartbeat_of(get(cluster, "lease", k.lease_name(kwok_node), "-n", namespace))
            return again is not None and first is not None and again > first

        eventually(renewed, timeout=15, what="a second heartbeat")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=20)[0].decode()
    assert process.returncode == 0, output
