"""Publish what the node agent detected on its Node, and heartbeat through a Lease.

The Kubernetes-native version of the origin agent's "register, then heartbeat every 30 s":
capabilities become labels and annotations under `agentfleet.io/` on the Node (server-side
apply, field manager `agentfleet-node-agent`, written only when they change), and the
heartbeat is a `coordination.k8s.io/v1` Lease per node, renewed like the kubelet renews its
own. The placement ledger treats a node whose Lease expired as stale (placement/inventory.py).

    agentfleet node-agent --node-name $NODE_NAME      # cli.py wires the flags to `main`

`/healthz` (liveness) answers while the detect-and-publish loop keeps turning, whatever the API
server does: restarting a node agent cannot bring an API server back. `/readyz` answers while
the last heartbeat was renewed within the Lease's duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import signal
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from agentfleet.api import constants as c
from agentfleet.api import timestamps
from agentfleet.kube import client as kube
from agentfleet.kube.client import LEASES, NODES, ApiError, Kube
from agentfleet.nodeagent.detect import Capabilities, GPUProbe, HostProbe, NvmlGPUs, detect
from agentfleet.placement import labels as k
from agentfleet.telemetry import probes

log = logging.getLogger(__name__)

MANAGER = k.NODE_AGENT_MANAGER
DEFAULT_INTERVAL = 10.0  # seconds between heartbeats (the kubelet's node lease default)
DEFAULT_LEASE_SECONDS = 40  # a node is stale after this long without a renewal
DEFAULT_RESYNC_SECONDS = 300.0  # re-read the Node even when nothing changed locally
USED_STEP_MIB = 256  # used VRAM is published rounded up to this, so jitter costs no writes

Metadata = tuple[dict[str, str], dict[str, str]]  # (labels, annotations)


def node_metadata(caps: Capabilities, used_step_mib: int = USED_STEP_MIB) -> Metadata:
    """The labels and annotations that describe `caps` on the Node.

    GPU keys are only published when NVML could look: "unknown" must not read as "no GPUs",
    or a node whose agent lacks the driver would look GPU-less (and stale-proof) to placement."""
    labels = {
        k.AGENT_CPU_COUNT: str(caps.cpus),
        k.AGENT_MEMORY_MIB: str(caps.memory_mib),
        k.AGENT_DISK_GIB: str(caps.disk_gib),
    }
    annotations = {k.AGENT_DETECTION: json.dumps({"notes": list(caps.notes)}, sort_keys=True)}
    if caps.gpus is None:
        return labels, annotations
    labels[k.AGENT_GPU_COUNT] = str(len(caps.gpus))
    healthy = [g for g in caps.gpus if g.healthy]
    if caps.gpus:
        labels[k.AGENT_GPU_VENDOR] = "nvidia"
    if healthy:
        labels[k.AGENT_GPU_MEMORY_MIB] = str(min(g.memory_mib for g in healthy))
        products = {k.label_value(g.name) for g in healthy}
        labels[k.AGENT_GPU_PRODUCT] = products.pop() if len(products) == 1 else k.MIXED_PRODUCT
    annotations[k.AGENT_GPUS] = json.dumps(
        [
            {
                "index": g.index,
                "name": g.name,
                "uuid": g.uuid,
                "memoryMiB": g.memory_mib,
                "usedMiB": _round_up(g.used_mib, used_step_mib),
                "healthy": g.healthy,
            }
            for g in caps.gpus
        ],
        separators=(",", ":"),
    )
    return labels, annotations


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step if step > 1 else value


def published(node: Mapping[str, Any], wanted: Metadata) -> bool:
    """Does the Node already carry exactly what we would apply, with nothing else of ours?"""
    meta = node.get("metadata") or {}
    labels, annotations = wanted
    current_labels = meta.get("labels") or {}
    current_annotations = meta.get("annotations") or {}
    if any(current_labels.get(key) != value for key, value in labels.items()):
        return False
    if any(current_annotations.get(key) != value for key, value in annotations.items()):
        return False
    return owned_keys(node) == (set(labels), set(annotations))


def owned_keys(node: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """Label and annotation keys our field manager owns, from managedFields."""
    labels: set[str] = set()
    annotations: set[str] = set()
    for entry in (node.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") != MANAGER or entry.get("operation") != "Apply":
            continue
        fields = (entry.get("fieldsV1") or {}).get("f:metadata") or {}
        labels |= {key.removeprefix("f:") for key in fields.get("f:labels") or {}}
        annotations |= {key.removeprefix("f:") for key in fields.get("f:annotations") or {}}
    return labels, annotations


class NodePublisher:
    """Writes one node's labels, annotations and heartbeat Lease (each write is counted in
    agentfleet_api_writes_total, like every write through kube/client.py)."""

    def __init__(
        self,
        kube: Kube,
        node_name: str,
        *,
        namespace: str = c.OPERATOR_NAMESPACE,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        resync_seconds: float = DEFAULT_RESYNC_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.node_name = node_name
        self.namespace = namespace
        self.lease_seconds = lease_seconds
        self.resync_seconds = resync_seconds
        self.clock = clock
        self.renewed_at = float("-inf")  # clock() of the last heartbeat the API server took
        self._last: Metadata | None = None
        self._checked_at = float("-inf")
        self._node_uid: str | None = None

    async def publish(self, caps: Capabilities) -> bool:
        """Apply the node's labels and annotations if they differ; True when it wrote.

        Reads the Node only when what we would publish changed or a resync is due, and
        writes only when the Node does not already carry it."""
        wanted = node_metadata(caps)
        fresh = self.clock() - self._checked_at < self.resync_seconds
        if wanted == self._last and fresh:
            return False
        node = await self.kube.request("GET", NODES.ref("", self.node_name))
        self._node_uid = node["metadata"]["uid"]
        self._checked_at = self.clock()
        if published(node, wanted):
            self._last = wanted
            return False
        labels, annotations = wanted
        metadata = {"name": self.node_name, "labels": labels, "annotations": annotations}
        await self.kube.apply(NODES.body(metadata=metadata), NODES.plural, None, MANAGER)
        self._last = wanted
        log.info("published %d labels and %d annotations", len(labels), len(annotations))
        return True

    async def heartbeat(self, now: datetime.datetime | None = None) -> None:
        """Create or renew this node's Lease (one write), owned by the Node so that it goes
        away with it."""
        if self._node_uid is None:
            node = await self.kube.request("GET", NODES.ref("", self.node_name))
            self._node_uid = node["metadata"]["uid"]
        name = k.lease_name(self.node_name)
        lease = LEASES.body(
            metadata={
                "name": name,
                "namespace": self.namespace,
                "labels": {
                    k.LEASE_NODE_LABEL: self.node_name,
                    c.LABEL_MANAGED_BY: MANAGER,
                },
                "ownerReferences": [NODES.body(name=self.node_name, uid=self._node_uid)],
            },
            spec={
                "holderIdentity": f"{MANAGER}/{self.node_name}",
                "leaseDurationSeconds": self.lease_seconds,
                "renewTime": timestamps.format_micro_time(now),
            },
        )
        await self.kube.apply(lease, LEASES.plural, None, MANAGER)
        self.renewed_at = self.clock()


async def run(
    kube: Kube,
    node_name: str,
    *,
    interval: float = DEFAULT_INTERVAL,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    namespace: str = c.OPERATOR_NAMESPACE,
    disk_path: str = "/",
    host: HostProbe | None = None,
    gpus: GPUProbe | None = None,
    stop: asyncio.Event | None = None,
    publisher: NodePublisher | None = None,
    ticks: Callable[[], None] | None = None,
) -> NodePublisher:
    """Heartbeat, detect and publish every `interval` seconds until `stop` is set.

    The Lease is renewed before the labels are written, so the operator never sees fresh
    node-agent labels without a live heartbeat. API errors are logged and retried on the
    next tick: a node agent that stops renewing is exactly what staleness detects."""
    stop = stop or asyncio.Event()
    publisher = publisher or NodePublisher(
        kube, node_name, namespace=namespace, lease_seconds=lease_seconds
    )
    gpu_probe = gpus or NvmlGPUs()
    try:
        while not stop.is_set():
            if ticks:
                ticks()
            caps = await asyncio.to_thread(detect, host, gpu_probe, disk_path)
            try:
                await publisher.heartbeat()
                await publisher.publish(caps)
            except ApiError as error:
                if error.unreachable:
                    log.warning("API server unreachable: %s", error.message)
                else:
                    log.warning(
                        "API server refused the node agent (%s): %s", error.status, error.message
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
    finally:
        if isinstance(gpu_probe, NvmlGPUs):
            gpu_probe.close()
    return publisher


class NodeAgentHealth:
    """Liveness from the loop's last tick; readiness from the last renewed heartbeat."""

    def __init__(self, interval: float, lease_seconds: int) -> None:
        self.interval = interval
        self.lease_seconds = lease_seconds
        self.ticked_at = time.monotonic()
        self.publisher: NodePublisher | None = None

    def tick(self) -> None:
        self.ticked_at = time.monotonic()

    async def healthz(self, _: web.Request) -> web.Response:
        # Detection itself may take a while (NVML on a busy node): allow a few intervals.
        late = time.monotonic() - self.ticked_at
        if late > 3 * self.interval + 30:
            body = {"status": "unhealthy", "loopStalledSeconds": round(late)}
            return web.json_response(body, status=500)
        return web.json_response({"status": "ok"})

    async def readyz(self, _: web.Request) -> web.Response:
        renewed = self.publisher.renewed_at if self.publisher else float("-inf")
        age = time.monotonic() - renewed
        if age > self.lease_seconds:
            return web.json_response({"status": "heartbeat not renewed"}, status=503)
        return web.json_response({"status": "ok", "renewedSecondsAgo": round(age, 1)})

    async def serve(self, address: str, port: int) -> web.AppRunner:
        return await probes.serve(address, port, self.healthz, self.readyz)


def main(
    node_name: str,
    *,
    interval: float,
    lease_seconds: int,
    namespace: str,
    disk_path: str,
    health_address: str,
    health_port: int,
) -> None:
    """Entry point of `agentfleet node-agent` (its defaults are the command's, in cli.py):
    runs until SIGTERM or SIGINT."""

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        health = NodeAgentHealth(interval, lease_seconds)
        runner = await health.serve(health_address, health_port) if health_port else None
        connection = await kube.connect(prefer_in_cluster=True)
        try:
            async with connection:
                health.publisher = NodePublisher(
                    connection, node_name, namespace=namespace, lease_seconds=lease_seconds
                )
                await run(
                    connection,
                    node_name,
                    interval=interval,
                    disk_path=disk_path,
                    stop=stop,
                    publisher=health.publisher,
                    ticks=health.tick,
                )
        finally:
            if runner:
                await runner.cleanup()

    log.info("node agent for node %s, heartbeat Lease in namespace %s", node_name, namespace)
    asyncio.run(serve())
