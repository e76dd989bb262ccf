"""What the node agent would write, and that placement reads it back as meant."""

from __future__ import annotations

import json
import re

from agentfleet.nodeagent import publish
from agentfleet.nodeagent.detect import Capabilities, GPUInfo
from agentfleet.nodeagent.publish import node_metadata, owned_keys, published
from agentfleet.placement import GPUDevice, NodeInventory, node_from_object
from agentfleet.placement import labels as k
from tests.unit.placement.fleet import NOW, node

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def caps(gpus: tuple[GPUInfo, ...] | None, notes: tuple[str, ...] = ()) -> Capabilities:
    return Capabilities(96, 1024 * 1024, 900, "linux", "x86_64", gpus, notes)


H100 = GPUInfo(0, "NVIDIA H100 80GB HBM3", "GPU-a", 81559, 1000)
L4 = GPUInfo(1, "NVIDIA L4", "GPU-b", 23034, 0)


def test_labels_and_per_gpu_annotation() -> None:
    labels, annotations = node_metadata(
        caps((H100, H100.__class__(1, H100.name, "GPU-c", 81559, 0)))
    )
    assert labels == {
        "agentfleet.io/cpu.count": "96",
        "agentfleet.io/memory.mib": str(1024 * 1024),
        "agentfleet.io/disk.gib": "900",
        "agentfleet.io/gpu.count": "2",
        "agentfleet.io/gpu.vendor": "nvidia",
        "agentfleet.io/gpu.memory": "81559",
        "agentfleet.io/gpu.product": "NVIDIA-H100-80GB-HBM3",
    }
    assert all(LABEL_VALUE.match(v) and len(v) <= 63 for v in labels.values())
    gpus = json.loads(annotations["agentfleet.io/gpus"])
    assert gpus[0] == {
        "index": 0,
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": "GPU-a",
        "memoryMiB": 81559,
        "usedMiB": 1024,  # 1000 rounded up to the 256 MiB step
        "healthy": True,
    }
    assert json.loads(annotations["agentfleet.io/detection"]) == {"notes": []}


def test_mixed_gpus_publish_the_smallest_memory() -> None:
    labels, _ = node_metadata(caps((H100, L4)))
    assert labels["agentfleet.io/gpu.memory"] == "23034"
    assert labels["agentfleet.io/gpu.product"] == "mixed"


def test_unknown_gpus_publish_no_gpu_keys_but_zero_gpus_do() -> None:
    unknown_labels, unknown_annotations = node_metadata(caps(None, ("NVML could not start",)))
    assert not any(key.startswith("agentfleet.io/gpu") for key in unknown_labels)
    assert "agentfleet.io/gpus" not in unknown_annotations
    assert "NVML could not start" in unknown_annotations["agentfleet.io/detection"]
    labels, annotations = node_metadata(caps(()))
    assert labels["agentfleet.io/gpu.count"] == "0"
    assert annotations["agentfleet.io/gpus"] == "[]"


def test_used_vram_jitter_below_the_step_changes_nothing() -> None:
    a = node_metadata(caps((GPUInfo(0, "X", "u", 1000, 10),)))
    b = node_metadata(caps((GPUInfo(0, "X", "u", 1000, 200),)))
    c = node_metadata(caps((GPUInfo(0, "X", "u", 1000, 300),)))
    assert a == b != c


def test_label_values_are_valid_for_any_product_name() -> None:
    odd = GPUInfo(0, " NVIDIA RTX 6000 Ada Generation (rev 2) ~~ " * 3, "u", 49140, 0)
    labels, _ = node_metadata(caps((odd,)))
    assert LABEL_VALUE.match(labels["agentfleet.io/gpu.product"])
    assert len(labels["agentfleet.io/gpu.product"]) <= 63


def test_placement_reads_what_the_node_agent_publishes() -> None:
    labels, annotations = node_metadata(
        caps((H100, GPUInfo(1, "unknown", "", 0, 0, healthy=False)))
    )
    obj = node("gpu-1", labels=labels, annotations=annotations, allocatable={"nvidia.com/gpu": "2"})
    inventory = node_from_object(obj, NOW, NOW, 40)
    assert isinstance(inventory, NodeInventory), inventory
    assert inventory.gpus == (
        GPUDevice(0, 81559, 1024),
        GPUDevice(1, 0, 0, healthy=False),
    )
    assert inventory.vendor == "nvidia" and inventory.product == "NVIDIA-H100-80GB-HBM3"


def managed(
    labels: list[str],
    annotations: list[str],
    manager: str = k.NODE_AGENT_MANAGER,
    operation: str = "Apply",
) -> dict[str, object]:
    return {
        "manager": manager,
        "operation": operation,
        "fieldsV1": {
            "f:metadata": {
                "f:labels": {f"f:{key}": {} for key in labels},
                "f:annotations": {f"f:{key}": {} for key in annotations},
            }
        },
    }


def test_published_needs_equal_values_and_exactly_our_keys() -> None:
    wanted = ({"a": "1"}, {"b": "2"})
    node_object = {
        "metadata": {
            "labels": {"a": "1", "other": "x"},
            "annotations": {"b": "2"},
            "managedFields": [managed(["a"], ["b"]), managed(["other"], [], "kubectl", "Update")],
        }
    }
    assert owned_keys(node_object) == ({"a"}, {"b"})
    assert published(node_object, wanted)
    assert not published(node_object, ({"a": "2"}, {"b": "2"}))  # value differs
    assert not published(node_object, ({}, {"b": "2"}))  # we still own "a": must remove it
    node_object["metadata"]["managedFields"] = []
    assert not published(node_object, wanted)  # someone else set them: take ownership


async def test_health_is_live_while_the_loop_turns_and_ready_while_the_lease_is_fresh() -> None:
    import time

    health = publish.NodeAgentHealth(interval=10, lease_seconds=40)
    assert (await health.healthz(None)).status == 200  # type: ignore[arg-type]
    assert (await health.readyz(None)).status == 503  # type: ignore[arg-type]  # no heartbeat yet
    health.publisher = publish.NodePublisher(None, "n")  # type: ignore[arg-type]
    health.publisher.renewed_at = time.monotonic() - 5
    assert (await health.readyz(None)).status == 200  # type: ignore[arg-type]
    health.publisher.renewed_at = time.monotonic() - 41
    assert (await health.readyz(None)).status == 503  # type: ignore[arg-type]
    health.ticked_at = time.monotonic() - 61  # 3 intervals + 30 s without a tick
    assert (await health.healthz(None)).status == 500  # type: ignore[arg-type]
