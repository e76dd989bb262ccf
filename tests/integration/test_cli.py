"""The `agentfleet` user commands, run as real processes against a real API server with the
operator running: what they do is what kubectl sees, and their exit codes hold."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentfleet.api import constants as c
from agentfleet.frontends.cli import ExitCode
from tests.conftest import Cluster, Operator

pytestmark = pytest.mark.cluster

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imports"


def agentfleet(
    cluster: Cluster, *args: str, namespace: str | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """One real `agentfleet` command (python -m agentfleet), as a user would type it."""
    command = [sys.executable, "-m", "agentfleet", *args, "--kubeconfig", cluster.kubeconfig]
    if namespace:
        command += ["-n", namespace]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def kubectl_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def agent_names(cluster: Cluster, namespace: str) -> list[str]:
    items = kubectl_json(cluster, "get", "aiagents", "-n", namespace)["items"]
    return sorted(item["metadata"]["name"] for item in items)


def test_spawn_wait_list_get_scale_delete_agree_with_kubectl(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    spawned = agentfleet(
        cluster, "spawn", "market", "--image-ref", "docker.io/my-org/market:latest",
        "--cpu", "500m", "--mem", "256", "--ports", "8080:8080", "--env", "LOG_LEVEL=info",
        "--replicas", "2", "--type", "discovery", "--wait", "--timeout", "90",
        namespace=namespace,
    )  # fmt: skip
    assert spawned.returncode == ExitCode.OK, spawned.stderr
    assert spawned.stdout.strip() == "aiagent.agentfleet.io/market created"
    assert "market is Ready: 2 of 2 replicas available" in spawned.stderr
    assert f"http://market.{namespace}.svc.cluster.local:8080" in spawned.stderr

    stored = kubectl_json(cluster, "get", "aia", "market", "-n", namespace)
    assert stored["spec"]["resources"]["requests"] == {"cpu": "500m", "memory": "256Mi"}
    assert stored["spec"]["env"] == [{"name": "LOG_LEVEL", "value": "info"}]
    assert stored["spec"]["agentType"] == "discovery"
    deployment = kubectl_json(cluster, "get", "deployment", "market", "-n", namespace)
    assert deployment["status"]["availableReplicas"] == 2

    listed = agentfleet(cluster, "list", namespace=namespace)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == [
        "NAME", "TYPE", "READY", "AVAILABLE", "NODE/GPU", "VRAM", "ENDPOINT", "AGE",
    ]  # fmt: skip
    assert row.split()[:7] == [
        "market", "discovery", "True", "2/2", "cpu", "-",
        f"market.{namespace}.svc.cluster.local:8080",
    ]  # fmt: skip
    names = agentfleet(cluster, "list", "-o", "name", namespace=namespace)
    assert names.stdout.split() == ["aiagent.agentfleet.io/market"]

    as_json = json.loads(
        agentfleet(cluster, "get", "market", "-o", "json", namespace=namespace).stdout
    )
    assert as_json["spec"] == stored["spec"]
    assert as_json["metadata"]["uid"] == stored["metadata"]["uid"]
    assert "managedFields" not in as_json["metadata"]
    as_yaml = yaml.safe_load(
        agentfleet(cluster, "get", "market", "-o", "yaml", namespace=namespace).stdout
    )
    assert as_yaml["spec"] == stored["spec"]
    summary = agentfleet(cluster, "get", "market", namespace=namespace).stdout
    assert "Ready" in summary and "2 of 2 replicas available" in summary

    scaled = agentfleet(cluster, "scale", "market", "3", "--wait", namespace=namespace)
    assert scaled.returncode == 0, scaled.stderr
    assert scaled.stdout.strip() == "aiagent.agentfleet.io/market scaled to 3"
    assert kubectl_json(cluster, "get", "aia", "market", "-n", namespace)["spec"]["replicas"] == 3
    deployment = kubectl_json(cluster, "get", "deployment", "market", "-n", namespace)
    assert deployment["status"]["availableReplicas"] == 3

    deleted = agentfleet(cluster, "delete", "market", "--wait", namespace=namespace)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == "aiagent.agentfleet.io/market deleted"
    assert agent_names(cluster, namespace) == []
    # --wait waited for the children too (foreground deletion).
    assert cluster.kubectl("get", "deployment", "market", "-n", namespace, check=False).returncode
    assert cluster.kubectl("get", "service", "market", "-n", namespace, check=False).returncode


def test_logs_through_the_api_server_say_why_simulated_pods_have_none(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    spawned = agentfleet(
        cluster, "spawn", "quiet", "--image", "example.com/quiet:1", "--replicas", "2",
        "--wait", namespace=namespace,
    )  # fmt: skip
    assert spawned.returncode == 0, spawned.stderr
    pods = kubectl_json(cluster, "get", "pods", "-n", namespace)["items"]
    assert len(pods) == 2

    logs = agentfleet(cluster, "logs", "quiet", namespace=namespace)
    assert logs.returncode == ExitCode.ERROR
    assert "runs on the simulated node" in logs.stderr and "(kwok)" in logs.stderr
    everything = agentfleet(cluster, "logs", "quiet", "--all", namespace=namespace)
    assert everything.returncode == ExitCode.ERROR
    for pod in pods:  # one clear line per replica
        assert f"Pod {pod['metadata']['name']} runs on the simulated node" in everything.stderr

    beyond = agentfleet(cluster, "logs", "quiet", "--replica", "5", namespace=namespace)
    assert beyond.returncode == ExitCode.NOT_FOUND
    assert "has 2 replica(s): --replica must be 0..1" in beyond.stderr
    absent = agentfleet(cluster, "logs", "absent", namespace=namespace)
    assert absent.returncode == ExitCode.NOT_FOUND and '"absent" not found' in absent.stderr


def test_import_of_hac_toml_and_service_yaml(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    dry = agentfleet(
        cluster, "import", str(FIXTURES / "market-intelligence.hac.toml"), "--dry-run",
        namespace=namespace,
    )  # fmt: skip
    assert dry.returncode == 0 and yaml.safe_load(dry.stdout)["kind"] == c.KIND
    assert agent_names(cluster, namespace) == []  # a dry run creates nothing

    hac = agentfleet(
        cluster, "import", str(FIXTURES / "market-intelligence.hac.toml"), "--wait",
        "--timeout", "90", namespace=namespace,
    )  # fmt: skip
    assert hac.returncode == 0, hac.stderr
    for field in ("kernel", "drive", "interface"):
        assert f"[hardware].{field} has no meaning on Kubernetes" in hac.stderr
    assert "market-intelligence-agent is Ready" in hac.stderr
    stored = kubectl_json(cluster, "get", "aia", "market-intelligence-agent", "-n", namespace)
    assert stored["spec"]["image"] == "docker.io/my-org/market-intelligence-agent:latest"
    assert stored["spec"]["resources"]["requests"] == {"cpu": "2", "memory": "2048Mi"}
    annotations = stored["metadata"]["annotations"]
    assert annotations["agentfleet.io/description"] == "AI agent for real-time market analysis"

    service = agentfleet(
        cluster, "import", str(FIXTURES / "echo-service.yaml"), "--wait", namespace=namespace
    )
    assert service.returncode == 0, service.stderr
    assert "echo-service is Ready" in service.stderr
    stored = kubectl_json(cluster, "get", "aia", "echo-service", "-n", namespace)
    assert stored["spec"]["probes"]["readiness"]["httpGet"] == {"path": "/health", "port": "http"}
    assert {"name": "WORKERS", "value": "2"} in stored["spec"]["env"]

    invalid = agentfleet(
        cluster, "import", str(FIXTURES / "invalid-port.service.yaml"), namespace=namespace
    )
    assert invalid.returncode == ExitCode.USAGE
    assert "invalid-port.service.yaml:3: port:" in invalid.stderr
    assert agent_names(cluster, namespace) == ["echo-service", "market-intelligence-agent"]


def test_exit_codes_scripts_can_rely_on(
    cluster: Cluster, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    missing = agentfleet(cluster, "get", "nope", namespace=namespace)
    assert missing.returncode == ExitCode.NOT_FOUND
    assert agentfleet(cluster, "delete", "nope", namespace=namespace).returncode == 3
    assert agentfleet(cluster, "scale", "nope", "2", namespace=namespace).returncode == 3

    first = agentfleet(cluster, "spawn", "twice", "--image", "i:1", namespace=namespace)
    assert first.returncode == 0, first.stderr
    again = agentfleet(cluster, "spawn", "twice", "--image", "i:1", namespace=namespace)
    assert again.returncode == ExitCode.ALREADY_EXISTS and "already exists" in again.stderr

    # A CEL rule only the API server knows: refused there, named, nothing created.
    refused = agentfleet(
        cluster, "spawn", "scaler", "--image", "i:1", "--min", "5", "--max", "2",
        namespace=namespace,
    )  # fmt: skip
    assert refused.returncode == ExitCode.USAGE
    assert "autoscaling.minReplicas must be <= maxReplicas" in refused.stderr

    # An agent that cannot become Ready in time (its volume's claim does not exist): exit 4
    # with what it is waiting for; the agent stays, as with `kubectl wait`.
    manifest = tmp_path / "stuck.yaml"
    manifest.write_text("name: stuck\nimage: i:1\nvolumes: [no-such-claim:/data]\n")
    stuck = agentfleet(
        cluster, "import", str(manifest), "--wait", "--timeout", "4", namespace=namespace
    )
    assert stuck.returncode == ExitCode.NOT_READY
    assert "timed out after 4 s waiting for stuck: 0 of 1 replicas available" in stuck.stderr
    assert agent_names(cluster, namespace) == ["stuck", "twice"]


def test_spawn_wait_stops_with_the_placement_message_when_no_gpu_fits(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    result = agentfleet(
        cluster, "spawn", "huge", "--image", "i:1", "--gpu", "1", "--vram", "1000",
        "--wait", "--timeout", "30", namespace=namespace,
    )  # fmt: skip
    assert result.returncode == ExitCode.NOT_READY
    assert "huge cannot become Ready (InsufficientVRAM)" in result.stderr


def test_nodes_show_capabilities_and_the_node_agent_heartbeat(
    cluster: Cluster, operator: Operator
) -> None:
    if not cluster.local:
        pytest.skip("checks the simulated nodes of the local control plane")
    renewed = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5)
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": "agentfleet-node-cpu-2",
            "namespace": "agentfleet-system",
            "labels": {"agentfleet.io/node": "cpu-2"},
        },
        "spec": {
            "holderIdentity": "agentfleet-node-agent/cpu-2",  # its node agent, as the ledger asks
            "leaseDurationSeconds": 40,
            "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(lease))
    try:
        listed = agentfleet(cluster, "nodes", "-o", "json")
        table = agentfleet(cluster, "nodes")
    finally:
        cluster.kubectl("delete", "lease", "agentfleet-node-cpu-2", "-n", "agentfleet-system")
    assert listed.returncode == 0, listed.stderr
    views = {view["name"]: view for view in json.loads(listed.stdout)}
    assert set(views) >= {"cpu-1", "cpu-2", "gpu-a100-1", "gpu-h100-1", "gpu-l4-timeslice-1"}
    assert 4 <= views["cpu-2"]["heartbeat_age"] < 120
    assert views["cpu-1"]["heartbeat_age"] is None
    a100 = views["gpu-a100-1"]
    assert a100["gpus"][0]["count"] == 8 and a100["gpus"][0]["vram_mib"] == 81920
    assert a100["ready"] == "True" and a100["simulated"] is True
    rows = {line.split()[0]: line for line in table.stdout.splitlines()[1:]}
    assert "8x NVIDIA-A100-SXM4-80GB 80Gi" in rows["gpu-a100-1"]
    assert rows["cpu-1"].split()[5] == "-"  # no node agent heartbeat


def test_gpus_lists_every_gpu_with_its_vram(cluster: Cluster, operator: Operator) -> None:
    if not cluster.local:
        pytest.skip("checks the simulated nodes of the local control plane")
    result = agentfleet(cluster, "gpus", "-o", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    per_node: dict[str, int] = {}
    for row in rows:
        per_node[row["node"]] = per_node.get(row["node"], 0) + 1
        assert row["free_mib"] <= row["total_mib"]
    assert per_node == {
        "gpu-a100-1": 8,
        "gpu-h100-1": 8,
        "gpu-l4-timeslice-1": 1,
        "gpu-mi300x-1": 8,
    }
    a100 = [r for r in rows if r["node"] == "gpu-a100-1"]
    assert {r["total_mib"] for r in a100} == {81920} and [r["index"] for r in a100] == list(
        range(8)
    )
    table = agentfleet(cluster, "gpus")
    assert len(table.stdout.splitlines()) == 1 + len(rows)


def test_the_kubectl_plugin_name_runs_the_same_cli(cluster: Cluster, tmp_path: Path) -> None:
    """`kubectl agentfleet ...` finds `kubectl-agentfleet` on PATH and passes the arguments."""
    plugin = tmp_path / "kubectl-agentfleet"
    plugin.write_text(f'#!/bin/sh\nexec {sys.executable} -m agentfleet "$@"\n')
    plugin.chmod(0o755)
    result = subprocess.run(
        [cluster.kubectl_path, "agentfleet", "nodes", "--kubeconfig", cluster.kubeconfig],
        capture_output=True, text=True, timeout=60,
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[:2] == ["NAME", "READY"]
