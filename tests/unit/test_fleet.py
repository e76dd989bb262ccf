"""What the front ends read from objects: readiness for waiters, node views, ages."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentfleet import placement
from agentfleet.api import constants as c
from agentfleet.frontends import fleet
from agentfleet.frontends.fleet import Readiness, readiness

NODES = Path(__file__).resolve().parents[1] / "e2e" / "nodes"
NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)


def agent(generation: int = 1, observed: int | None = 1, **conditions: tuple[str, str, str]) -> Any:
    status: dict[str, Any] = {}
    if observed is not None:
        status["observedGeneration"] = observed
    status["conditions"] = [
        {"type": kind, "status": s, "reason": reason, "message": message}
        for kind, (s, reason, message) in conditions.items()
    ]
    return {"metadata": {"name": "a", "generation": generation}, "status": status}


def test_an_agent_the_operator_has_not_seen_is_waiting() -> None:
    assert readiness(agent(observed=None)) == Readiness(
        "waiting", "Pending", "waiting for the operator to observe generation 1"
    )
    state = readiness(agent(generation=3, observed=2, Ready=("True", "Available", "")))
    assert state.state == "waiting" and "generation 3" in state.message


def test_ready_waiting_and_stalled() -> None:
    ready = readiness(agent(Ready=("True", "Available", "2 of 2 replicas available")))
    assert ready == Readiness("ready", "Available", "2 of 2 replicas available")
    rolling = readiness(agent(Ready=("False", "Progressing", "1 of 2 replicas available")))
    assert rolling == Readiness("waiting", "Progressing", "1 of 2 replicas available")
    stalled = readiness(
        agent(
            Ready=("False", "ApplyFailed", "refused"),
            Stalled=("True", "ApplyFailed", "Deployment a was rejected"),
        )
    )
    assert stalled == Readiness("failed", "ApplyFailed", "Deployment a was rejected")
    assert not stalled.unplaceable


@pytest.mark.parametrize(
    "reason", ["InsufficientVRAM", "InsufficientGPU", "InsufficientCPU", "InsufficientMemory"]
)
def test_an_agent_no_node_can_place_has_failed_with_the_placement_message(reason: str) -> None:
    message = "no GPU has 1000Gi free: 25 GPUs on 4 nodes, the largest has 192Gi"
    state = readiness(
        agent(Ready=("False", "Progressing", "0 of 1"), Placed=("False", reason, message))
    )
    assert state == Readiness("failed", reason, message)
    assert state.unplaceable


def test_placed_true_or_other_reasons_do_not_fail_the_wait() -> None:
    placed = agent(Ready=("False", "Progressing", "0 of 1"), Placed=("True", "Placed", "ok"))
    assert readiness(placed).state == "waiting"
    pending = agent(Ready=("False", "Progressing", "0 of 1"), Placed=("False", "Pending", "..."))
    assert readiness(pending).state == "waiting"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (-3, "0s"), (45, "45s"), (119, "119s"), (192, "3m12s"), (3000, "50m"),
     (5 * 3600, "5h"), (3 * 86400, "3d")],
)  # fmt: skip
def test_human_age_reads_like_kubectl(seconds: float | None, text: str) -> None:
    assert fleet.human_age(seconds) == text


def test_age_of_timestamps() -> None:
    assert fleet.age("2026-01-01T11:59:00Z", NOW) == 60
    assert fleet.age("2026-01-01T11:59:59.500000Z", NOW) == 0.5
    assert fleet.age(None, NOW) is None


def node(name: str) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((NODES / f"{name}.yaml").read_text())
    body["metadata"]["uid"] = f"uid-{name}"
    body["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    body["status"]["addresses"] = [{"type": "InternalIP", "address": "10.0.0.7"}]
    return body


def lease(node_name: str, renewed: datetime.datetime, by_label: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"agentfleet-node-{node_name}"}
    if by_label:
        meta["labels"] = {f"{c.GROUP}/node": node_name}
    return {
        "metadata": meta,
        "spec": {
            "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "leaseDurationSeconds": 40,
        },
    }


def test_a_gpu_node_view_has_its_capabilities() -> None:
    view = fleet.node_view(node("gpu-a100-1"), None, NOW)
    assert (view.name, view.uid, view.ready, view.address) == (
        "gpu-a100-1", "uid-gpu-a100-1", "True", "10.0.0.7",
    )  # fmt: skip
    assert (view.os, view.arch, view.cpu, view.memory_mib) == ("linux", "amd64", "96", 1152 * 1024)
    assert view.gpus == [
        {
            "vendor": "nvidia",
            "product": "NVIDIA-A100-SXM4-80GB",
            "count": 8,
            "vram_mib": 81920,
            "sharing": "none",
            "slots": 8,
        }
    ]
    assert view.gpu_summary == "8x NVIDIA-A100-SXM4-80GB 80Gi"
    assert view.heartbeat_age is None and view.placement == "Ready"
    assert view.simulated and view.labels == {f"{c.GROUP}/e2e-node": "gpu-a100-1"}


def test_shared_and_cpu_nodes() -> None:
    shared = fleet.node_view(node("gpu-l4-timeslice-1"), None, NOW)
    assert shared.gpu_summary == "1x NVIDIA-L4-SHARED 22.5Gi (time-slicing, 4 slots)"
    cpu = fleet.node_view(node("cpu-1"), None, NOW)
    assert cpu.gpus == [] and cpu.gpu_summary == "-"


def test_the_node_agent_lease_gives_the_heartbeat_age() -> None:
    fresh = fleet.node_view(node("cpu-1"), lease("cpu-1", NOW - datetime.timedelta(seconds=7)), NOW)
    assert fresh.heartbeat_age == 7
    assert fresh.placement == "Ready"
    late = NOW - datetime.timedelta(minutes=5)
    stale = fleet.node_view(node("cpu-1"), lease("cpu-1", late), NOW)
    assert stale.heartbeat_age == 300
    assert stale.placement.startswith("stale heartbeat")


def test_leases_are_matched_to_nodes_by_label_or_name() -> None:
    by_label = lease("gpu-a100-1", NOW)
    by_label["metadata"]["name"] = "whatever"
    by_name = lease("cpu-2", NOW, by_label=False)
    other = {"metadata": {"name": "kube-controller-manager"}, "spec": {}}
    assert fleet.lease_by_node([by_label, by_name, other]) == {
        "gpu-a100-1": by_label,
        "cpu-2": by_name,
    }


def test_nodes_and_gpus_read_the_same_heartbeat_from_a_lease_known_only_by_name() -> None:
    """Both views ask placement.labels.lease_node, so they cannot disagree."""
    late = lease("gpu-a100-1", NOW - datetime.timedelta(minutes=5), by_label=False)
    view = fleet.node_view(node("gpu-a100-1"), fleet.lease_by_node([late])["gpu-a100-1"], NOW)
    inventory = placement.Inventory.of([node("gpu-a100-1")], NOW, [late])
    assert view.placement.startswith("stale heartbeat")
    assert "gpu-a100-1" in inventory.ineligible and "gpu-a100-1" not in inventory.nodes


def test_without_managed_fields() -> None:
    body = {"metadata": {"name": "a", "managedFields": [{}]}, "spec": {}}
    assert fleet.without_managed_fields(body) == {"metadata": {"name": "a"}, "spec": {}}
