"""Multi-cluster on real API servers: an exported agent's ServiceExport (the Multi-Cluster
Services CRD from sigs.k8s.io/mcs-api, optional like KEDA's and Istio's), and one fleet on two
local control planes side by side, seen at once by `agentfleet list/gpus` through a kubeconfig
that holds both contexts.

No MCS implementation runs here (GKE MCS, Submariner, Cilium or Istio would create the
ServiceImports and the clusterset.local DNS names): these tests check what agentfleet writes and
that the real CRD accepts it, not cross-cluster traffic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentfleet.api import constants as c
from agentfleet.frontends.cli import CLUSTER_ANNOTATION, ExitCode
from tests.conftest import (
    OUTPUT,
    ROOT,
    SUMMARY,
    Cluster,
    Operator,
    eventually,
    operator_kubeconfig,
    start_operator,
)
from tests.integration.test_mesh import conditions
from tests.integration.test_operator import agent_yaml, apply, wait_ready

pytestmark = pytest.mark.cluster

SERVICE_EXPORT_CRD = "serviceexports.multicluster.x-k8s.io"
EXPORTED = {"multicluster": {"export": True}}


def multicluster_ready(
    cluster: Cluster, namespace: str, name: str, status: str, reason: str
) -> dict[str, Any]:
    def check() -> dict[str, Any]:
        cond = conditions(cluster, namespace, name).get(c.COND_MULTICLUSTER_READY, {})
        assert (cond.get("status"), cond.get("reason")) == (status, reason), cond
        return cond

    return eventually(check, what=f"{namespace}/{name} {c.COND_MULTICLUSTER_READY}={status}")


def service_exports(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    """As the operator wrote them: v1alpha1 (mcs-api v0.5.2 also serves, and prefers, v1beta1)."""
    resource = "serviceexports.v1alpha1.multicluster.x-k8s.io"
    proc = cluster.kubectl("get", resource, "-n", namespace, "-o", "json", check=False)
    if proc.returncode != 0:
        return []
    items: list[dict[str, Any]] = json.loads(proc.stdout)["items"]
    return items


def mcs_crd() -> dict[str, Any]:
    from agentfleet_dev import build

    folder = build.toolchain(lambda m: None).upstream_crds / "mcs-api"
    crd: dict[str, Any] = next(
        doc
        for path in sorted(folder.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc["metadata"]["name"] == SERVICE_EXPORT_CRD
    )
    return crd


def install_mcs_crd(cluster: Cluster) -> None:
    cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(mcs_crd()))
    cluster.kubectl(
        "wait", "--for=condition=Established", f"crd/{SERVICE_EXPORT_CRD}", "--timeout=60s"
    )


def test_an_exported_agent_gets_a_service_export_and_converges_when_the_crd_comes_and_goes(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    apply(cluster, agent_yaml("scout", namespace, replicas=1, **EXPORTED))
    wait_ready(cluster, namespace, "scout")
    multicluster_ready(cluster, namespace, "scout", "True", c.Reason.APPLIED)
    (export,) = service_exports(cluster, namespace)
    assert export["apiVersion"] == "multicluster.x-k8s.io/v1alpha1"  # what Istio and MCS read
    assert export["metadata"]["name"] == "scout"
    assert export["metadata"]["ownerReferences"][0]["controller"] is True
    pid = operator.process.pid
    try:
        cluster.kubectl("delete", "crd", SERVICE_EXPORT_CRD, "--timeout=120s")
        said = multicluster_ready(cluster, namespace, "scout", "False", c.Reason.CRD_NOT_INSTALLED)
        assert SERVICE_EXPORT_CRD in said["message"]
        # The agent runs on: only the export waits for its CRD.
        assert conditions(cluster, namespace, "scout")[c.COND_READY]["status"] == "True"
        # A new exported agent is created meanwhile and reports the same.
        apply(cluster, agent_yaml("late", namespace, replicas=1, **EXPORTED))
        wait_ready(cluster, namespace, "late")
        multicluster_ready(cluster, namespace, "late", "False", c.Reason.CRD_NOT_INSTALLED)
    finally:
        install_mcs_crd(cluster)
    for name in ("scout", "late"):
        multicluster_ready(cluster, namespace, name, "True", c.Reason.APPLIED)
    eventually(
        lambda: (
            sorted(e["metadata"]["name"] for e in service_exports(cluster, namespace))
            == ["late", "scout"]
        ),
        what="both ServiceExports after the CRD came back",
    )
    assert operator.process.pid == pid and operator.process.poll() is None
    # Export off: the ServiceExport goes, and so does the condition.
    apply(cluster, agent_yaml("late", namespace, replicas=1))
    eventually(
        lambda: [e["metadata"]["name"] for e in service_exports(cluster, namespace)] == ["scout"],
        what="late's ServiceExport to be pruned",
    )
    eventually(
        lambda: c.COND_MULTICLUSTER_READY not in conditions(cluster, namespace, "late"),
        what="MultiClusterReady to go with the export",
    )


def test_the_crd_refuses_an_exported_agent_on_the_namespace_waypoint(
    cluster: Cluster, crd: None, namespace: str
) -> None:
    mesh = {"mode": "ambient", "waypoint": "namespace"}
    proc = cluster.kubectl(
        "apply", "-f", "-", input=agent_yaml("x", namespace, mesh=mesh, **EXPORTED), check=False
    )
    assert proc.returncode != 0
    assert "multicluster.export cannot use the namespace waypoint" in proc.stderr


# --- two clusters side by side ------------------------------------------------------------------


@pytest.fixture(scope="module")
def west(cluster: Cluster) -> Iterator[Cluster]:
    """A second local control plane (its own etcd, apiserver, controllers, kwok and nodes) in a
    directory next to the session's, with the AIAgent CRD."""
    from agentfleet_dev.cluster import LocalCluster

    base = os.environ.get("AGENTFLEET_TEST_CLUSTER_DIR", str(OUTPUT / "test-cluster"))
    local = LocalCluster(Path(base + "-west"), lambda m: print(m, file=sys.stderr))
    state = local.up(nodes=sorted((ROOT / "tests/e2e/nodes").glob("*.yaml")))
    SUMMARY.append(f"second local control plane (west) up in {state.startup_seconds} s")
    try:
        second = Cluster(state.kubeconfig, cluster.kubectl_path, local=True)
        crd_file = ROOT / "crds" / "aiagents.agentfleet.io.yaml"
        second.kubectl("apply", "--server-side", "-f", str(crd_file))
        second.kubectl("wait", "--for=condition=Established", f"crd/{c.CRD_NAME}", "--timeout=60s")
        yield second
    finally:
        local.down()


def flattened(cluster: Cluster) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(
        cluster.kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout
    )
    return config


@pytest.fixture(scope="module")
def clusterset(cluster: Cluster, west: Cluster) -> Path:
    """One kubeconfig with both clusters: contexts `east` (the session's) and `west`."""
    merged: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "current-context": "east"}
    for key in ("clusters", "users", "contexts"):
        merged[key] = []
    for name, member in (("east", cluster), ("west", west)):
        config = flattened(member)
        merged["clusters"].append({"name": name, "cluster": config["clusters"][0]["cluster"]})
        merged["users"].append({"name": name, "user": config["users"][0]["user"]})
        merged["contexts"].append(
            {"name": name, "context": {"cluster": name, "user": name, "namespace": "default"}}
        )
    path = OUTPUT / "clusterset.kubeconfig"
    path.write_text(json.dumps(merged))
    path.chmod(0o600)
    return path


def agentfleet(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "agentfleet", *args, "--kubeconfig", str(kubeconfig)]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def table(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def test_one_fleet_on_two_clusters_is_one_view(
    cluster: Cluster,
    west: Cluster,
    clusterset: Path,
    operator: Operator,
    namespace: str,
) -> None:
    """The same AIAgents applied to both clusters (what applicationset-clusters.yaml does),
    each reconciled by its cluster's own operator; `agentfleet list` and `gpus` with both
    contexts (or --all-contexts) show both, with a CLUSTER column."""
    west.kubectl("create", "namespace", namespace)
    west_operator = start_operator(
        operator_kubeconfig(west, name="west-operator"), name="west-operator"
    )
    try:
        gpu = {"gpu": {"count": 1, "vram": "8Gi"}}
        for member in (cluster, west):
            apply(member, agent_yaml("scout", namespace, replicas=1, **EXPORTED))
            apply(member, agent_yaml("coder", namespace, replicas=1, **gpu))
        for member in (cluster, west):
            for name in ("scout", "coder"):
                wait_ready(member, namespace, name)
            multicluster_ready(member, namespace, "scout", "True", c.Reason.APPLIED)
            assert [e["metadata"]["name"] for e in service_exports(member, namespace)] == ["scout"]

        listed = agentfleet(
            clusterset, "list", "--context", "east", "--context", "west", "-n", namespace
        )
        assert listed.returncode == ExitCode.OK, listed.stderr
        header, *rows = table(listed.stdout)
        assert header[:3] == ["CLUSTER", "NAME", "TYPE"]
        assert sorted((row[0], row[1], row[3]) for row in rows) == [
            ("east", "coder", "True"),
            ("east", "scout", "True"),
            ("west", "coder", "True"),
            ("west", "scout", "True"),
        ]
        every = agentfleet(clusterset, "list", "--all-contexts", "-n", namespace, "-o", "json")
        assert every.returncode == ExitCode.OK, every.stderr
        items = json.loads(every.stdout)["items"]
        assert sorted(
            (i["metadata"]["annotations"][CLUSTER_ANNOTATION], i["metadata"]["name"]) for i in items
        ) == [("east", "coder"), ("east", "scout"), ("west", "coder"), ("west", "scout")]
        # One context alone: the view of before, no CLUSTER column.
        alone = agentfleet(clusterset, "list", "--context", "west", "-n", namespace)
        assert table(alone.stdout)[0][0] == "NAME", alone.stdout

        gpus = agentfleet(clusterset, "gpus", "--all-contexts")
        assert gpus.returncode == ExitCode.OK, gpus.stderr
        header, *rows = table(gpus.stdout)
        assert header[:2] == ["CLUSTER", "NODE"]
        assert {row[0] for row in rows} == {"east", "west"}
        coder = f"{namespace}/coder"
        assert {row[0] for row in rows if coder in " ".join(row)} == {"east", "west"}

        # A cluster that does not answer is named, and the others are still shown.
        broken = yaml.safe_load(clusterset.read_text())
        broken["clusters"].append(
            {
                "name": "gone",
                "cluster": {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": True},
            }
        )
        broken["contexts"].append({"name": "gone", "context": {"cluster": "gone", "user": "west"}})
        partial_config = OUTPUT / "clusterset-broken.kubeconfig"
        partial_config.write_text(json.dumps(broken))
        partial_config.chmod(0o600)
        partial = agentfleet(partial_config, "list", "--all-contexts", "-n", namespace)
        assert partial.returncode == ExitCode.ERROR
        assert "context gone: cannot reach" in " ".join(partial.stderr.split())
        assert {row[0] for row in table(partial.stdout)[1:]} == {"east", "west"}
    finally:
        west_operator.stop()
        west.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
