"""An hour of churn: agents created, edited, scaled and deleted at a steady rate in many
namespaces, GPU agents among them, nodes failing and coming back, GPU nodes joining and
leaving; the operator observed from outside the whole time.

Threads, each with its own API client:
- churn (the caller's thread): one change every 1/rate seconds, chosen so that every
  namespace's population hovers around its target;
- a watch of every AIAgent: the time from each change to the status that reports its
  generation (`observedGeneration`), the harness's own reconcile latency;
- node chaos: one node at a time stops heartbeating (kwok stops managing it) and is marked
  NotReady for `outage` seconds, so the node lifecycle controller taints it and evicts its
  GPU agents' Pods after their 30 s toleration, and the placer places them again;
- node pool: a GPU node joins with a node-agent-style Lease (owned by the Node, as the node
  agent makes it) and leaves a few minutes later, so node names come and go;
- sampler: the operator's RSS and CPU from /proc, its metrics, and the API server's count of
  its identity's writes.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import platform
import random
import socket
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch
from kubernetes.client import ApiException

from agentfleet.api import constants as c
from agentfleet.placement import labels as k
from soak.kube import OPERATOR_NAMESPACE, ROOT, Identity, Kubectl
from soak.operator import OperatorProcess, Samples, histogram_quantile

Log = Callable[[str], None]
NODES = ROOT / "tests" / "e2e" / "nodes"
GPU_NODES = ("gpu-a100-1", "gpu-h100-1", "gpu-l4-timeslice-1", "gpu-mi300x-1")
CPU_NODES = ("cpu-1", "cpu-2", "cpu-3")
SOAK_LABEL = "agentfleet.io/soak"
IDENTITY = "agentfleet-soak"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"


@dataclass(frozen=True)
class SoakConfig:
    minutes: float = 60.0
    namespaces: int = 10
    agents_per_namespace: int = 8  # the population each namespace hovers around
    changes_per_second: float = 0.5
    gpu_share: float = 0.25  # of new agents
    autoscaled_share: float = 0.1
    mesh_share: float = 0.1
    chaos_every_seconds: float = 240.0
    outage_seconds: float = 75.0
    pool_every_seconds: float = 600.0  # a GPU node joins this often and leaves ...
    pool_life_seconds: float = 300.0  # ... this long after
    sample_every_seconds: float = 10.0
    writes_every_seconds: float = 60.0  # the API server's /metrics is megabytes: less often
    seed: int = 1
    operator_args: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        return self.minutes * 60


@dataclass
class Sample:
    t: float  # seconds since the churn began
    rss_mib: float
    cpu_seconds: float
    reconciles: float
    operator_writes: float
    depth: float
    changes: int
    apiserver_writes: int | None = None


@dataclass
class Pending:
    generation: int
    at: float
    kind: str


@dataclass
class Run:
    """Everything measured, filled in by the threads."""

    samples: list[Sample] = field(default_factory=list)
    changes: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    outages: list[dict[str, Any]] = field(default_factory=list)
    pool_nodes: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    pending: dict[tuple[str, str], Pending] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def total_changes(self) -> int:
        return sum(self.changes.values())


def api_client(kubeconfig: str) -> Any:
    """An API client of its own for each thread (the kubernetes client is untyped: Any)."""
    return config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]


# --- the agents ------------------------------------------------------------------------------


def agent_body(namespace: str, name: str, rng: random.Random, cfg: SoakConfig) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "agentType": rng.choice(["coding", "testing", "security", "documentation", "custom"]),
        "image": f"ghcr.io/agentfleet/agent-soak:{rng.randint(1, 9)}",
        "replicas": rng.randint(1, 2),
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
        "env": [{"name": "SOAK_REVISION", "value": "0"}],
    }
    draw = rng.random()
    if draw < cfg.gpu_share:
        shared = rng.random() < 0.3
        spec["gpu"] = {
            "count": 1,
            "vram": rng.choice(["4Gi", "8Gi"] if shared else ["16Gi", "24Gi", "40Gi", "80Gi"]),
            **({"sharing": "shared"} if shared else {}),
        }
        spec["replicas"] = 1
    elif draw < cfg.gpu_share + cfg.autoscaled_share:
        spec["agentType"] = "custom"
        spec["autoscaling"] = {"minReplicas": 1, "maxReplicas": 3}
    elif draw < cfg.gpu_share + cfg.autoscaled_share + cfg.mesh_share:
        spec["mesh"] = {"mode": "ambient", "allowFrom": [{"agentType": "orchestrator"}]}
    return {
        "apiVersion": f"{c.GROUP}/{c.VERSION}",
        "kind": "AIAgent",
        "metadata": {"name": name, "namespace": namespace, "labels": {SOAK_LABEL: "true"}},
        "spec": spec,
    }


class Churn:
    """Create, edit, scale and delete agents so that each namespace hovers around its target."""

    def __init__(self, api: client.ApiClient, cfg: SoakConfig, run: Run, log: Log) -> None:
        self.custom: Any = client.CustomObjectsApi(api)
        self.cfg = cfg
        self.run = run
        self.log = log
        self.rng = random.Random(cfg.seed)
        self.namespaces = [f"soak-{i:02d}" for i in range(cfg.namespaces)]
        self.agents: dict[str, dict[str, dict[str, Any]]] = {ns: {} for ns in self.namespaces}
        self.counter = 0

    def step(self) -> None:
        ns = self.rng.choice(self.namespaces)
        population = len(self.agents[ns])
        target = self.cfg.agents_per_namespace
        if population < 0.7 * target:
            action = "create"
        elif population > 1.3 * target:
            action = "delete"
        else:
            action = self.rng.choices(["create", "delete", "edit", "scale"], weights=[2, 2, 4, 2])[
                0
            ]
        if action == "scale":
            scalable = [n for n, b in self.agents[ns].items() if "autoscaling" not in b["spec"]]
            if not scalable:
                action = "edit"
        try:
            getattr(self, action)(ns)
        except ApiException as error:
            self.run.errors[f"{action}: {error.status} {error.reason}"] += 1
            return
        self.run.changes[action] += 1

    def _expect(self, ns: str, name: str, body: dict[str, Any], kind: str) -> None:
        with self.run.lock:
            self.run.pending[(ns, name)] = Pending(
                int(body["metadata"]["generation"]), time.monotonic(), kind
            )

    def create(self, ns: str) -> None:
        self.counter += 1
        name = f"a-{self.counter}"
        body = agent_body(ns, name, self.rng, self.cfg)
        created = self.custom.create_namespaced_custom_object(
            c.GROUP, c.VERSION, ns, c.PLURAL, body
        )
        self.agents[ns][name] = body
        self._expect(ns, name, created, "create")

    def delete(self, ns: str) -> None:
        if not self.agents[ns]:
            return self.create(ns)
        name = self.rng.choice(sorted(self.agents[ns]))
        self.custom.delete_namespaced_custom_object(c.GROUP, c.VERSION, ns, c.PLURAL, name)
        del self.agents[ns][name]
        with self.run.lock:
            self.run.pending.pop((ns, name), None)

    def edit(self, ns: str) -> None:
        if not self.agents[ns]:
            return self.create(ns)
        name = self.rng.choice(sorted(self.agents[ns]))
        revision = str(self.counter + self.rng.randint(1, 10**6))
        patch = {"spec": {"env": [{"name": "SOAK_REVISION", "value": revision}]}}
        patched = self.custom.patch_namespaced_custom_object(
            c.GROUP, c.VERSION, ns, c.PLURAL, name, patch
        )
        self._expect(ns, name, patched, "edit")

    def scale(self, ns: str) -> None:
        name = self.rng.choice(
            sorted(n for n, b in self.agents[ns].items() if "autoscaling" not in b["spec"])
        )
        body = self.agents[ns][name]
        replicas = self.rng.choice([r for r in (0, 1, 2, 3) if r != body["spec"]["replicas"]])
        if "gpu" in body["spec"]:
            replicas = 0 if body["spec"]["replicas"] else 1
        patched = self.custom.patch_namespaced_custom_object(
            c.GROUP, c.VERSION, ns, c.PLURAL, name, {"spec": {"replicas": replicas}}
        )
        body["spec"]["replicas"] = replicas
        self._expect(ns, name, patched, "scale")


# --- threads ---------------------------------------------------------------------------------


class Loop(threading.Thread):
    """A background thread that runs `body` until stopped; a failure is kept, not lost."""

    def __init__(self, name: str, body: Callable[[threading.Event], None]) -> None:
        super().__init__(name=name, daemon=True)
        self.body = body
        self.stopping = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            self.body(self.stopping)
        except BaseException as error:  # reported by stop()
            self.failure = error

    def stop(self, timeout: float = 180) -> None:
        self.stopping.set()
        self.join(timeout)
        if self.failure is not None:
            raise RuntimeError(f"{self.name} failed: {self.failure!r}") from self.failure


def observe_generations(kubeconfig: str, run: Run) -> Callable[[threading.Event], None]:
    """Time from each change to the status that reports its generation."""

    def body(stopping: threading.Event) -> None:
        custom: Any = client.CustomObjectsApi(api_client(kubeconfig))
        version = ""
        while not stopping.is_set():
            stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                custom.list_cluster_custom_object, c.GROUP, c.VERSION, c.PLURAL,
                label_selector=f"{SOAK_LABEL}=true", resource_version=version or None,
                timeout_seconds=30, allow_watch_bookmarks=True,
            )  # fmt: skip
            try:
                for event in stream:
                    obj = event["object"]
                    version = obj["metadata"].get("resourceVersion", version)
                    if event["type"] in ("ADDED", "MODIFIED"):
                        _seen(run, obj)
                    if stopping.is_set():
                        break
            except ApiException as error:
                if error.status == 410:
                    version = ""  # expired: list again
                else:
                    run.errors[f"watch: {error.status}"] += 1
                    time.sleep(1)

    return body


def _seen(run: Run, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    observed = (obj.get("status") or {}).get("observedGeneration")
    key = (meta["namespace"], meta["name"])
    with run.lock:
        pending = run.pending.get(key)
        if pending is None or observed is None or observed < pending.generation:
            return
        del run.pending[key]
        run.latencies.setdefault(pending.kind, []).append(time.monotonic() - pending.at)


def node_chaos(
    kubeconfig: str, cfg: SoakConfig, run: Run, log: Log
) -> Callable[[threading.Event], None]:
    """One node at a time stops heartbeating and is NotReady for `outage_seconds`."""

    def body(stopping: threading.Event) -> None:
        core = client.CoreV1Api(api_client(kubeconfig))
        rng = random.Random(cfg.seed + 1)
        while not stopping.wait(cfg.chaos_every_seconds - cfg.outage_seconds):
            node = rng.choice(GPU_NODES + GPU_NODES + CPU_NODES)  # GPU nodes twice as often
            began = time.monotonic()
            with failed(core, node):
                log(f"node {node} NotReady for {cfg.outage_seconds:.0f} s")
                stopping.wait(cfg.outage_seconds)
            run.outages.append({"node": node, "seconds": round(time.monotonic() - began, 1)})

    return body


@contextlib.contextmanager
def failed(core: client.CoreV1Api, node: str) -> Iterator[None]:
    """kwok stops heartbeating the node and its Ready condition turns False; afterwards kwok
    manages it again and it turns Ready."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    core.patch_node(node, {"metadata": {"annotations": {KWOK_ANNOTATION: None}}})
    try:
        condition = {
            "type": "Ready", "status": "False", "reason": "KubeletDown",
            "message": "soak: the node failed", "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }  # fmt: skip
        core.patch_node_status(node, {"status": {"conditions": [condition]}})
        yield
    finally:
        core.patch_node(node, {"metadata": {"annotations": {KWOK_ANNOTATION: "fake"}}})


def node_pool(
    kubeconfig: str, cfg: SoakConfig, run: Run, log: Log
) -> Callable[[threading.Event], None]:
    """A GPU node joins with a node-agent Lease, and leaves `pool_life_seconds` later."""

    def body(stopping: threading.Event) -> None:
        api = api_client(kubeconfig)
        core: Any = client.CoreV1Api(api)
        leases: Any = client.CoordinationV1Api(api)
        template = yaml.safe_load((NODES / "gpu-h100-1.yaml").read_text())
        joined: list[tuple[str, float]] = []
        count = 0
        next_join = time.monotonic() + cfg.pool_every_seconds / 2
        while not stopping.wait(5):
            now = time.monotonic()
            if now >= next_join:
                count += 1
                name = f"soak-pool-{count}"
                node = json.loads(json.dumps(template))
                node["metadata"]["name"] = name
                node["metadata"]["labels"].update(
                    {"kubernetes.io/hostname": name, "agentfleet.io/e2e-node": name}
                )
                created = core.create_node(node)
                leases.create_namespaced_lease(OPERATOR_NAMESPACE, node_lease(name, created))
                joined.append((name, now))
                run.pool_nodes.append(name)
                log(f"node {name} joined")
                next_join = now + cfg.pool_every_seconds
            for name, at in list(joined):
                if now - at >= cfg.pool_life_seconds:
                    core.delete_node(name)  # its Lease goes with it (ownerReference)
                    joined.remove((name, at))
                    log(f"node {name} left")
        for name, _ in joined:
            core.delete_node(name)

    return body


def node_lease(name: str, node: Any) -> dict[str, Any]:
    """The Lease the node agent keeps for its node (nodeagent/publish.py): owned by the Node."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": f"agentfleet-node-{name}",
            "labels": {c.LABEL_MANAGED_BY: k.NODE_AGENT_MANAGER, k.LEASE_NODE_LABEL: name},
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node.metadata.uid}
            ],
        },
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": 3600,  # no renewals needed for the node's short life
            "renewTime": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
    }


def sampler(
    operator: OperatorProcess, identity: Identity, cfg: SoakConfig, run: Run, began: float
) -> Callable[[threading.Event], None]:
    def body(stopping: threading.Event) -> None:
        last_writes = -math.inf
        while True:
            operator.check_alive()
            stats = operator.stats()
            samples = operator.samples()
            now = time.monotonic()
            writes = None
            if now - last_writes >= cfg.writes_every_seconds:
                writes, last_writes = identity.writes(), now
            run.samples.append(
                Sample(
                    round(now - began, 1), stats.rss_mib, stats.cpu_seconds,
                    operator.total("controller_runtime_reconcile_total", samples),
                    operator.total("agentfleet_api_writes_total", samples),
                    operator.total("workqueue_depth", samples), run.total_changes, writes,
                )
            )  # fmt: skip
            if stopping.wait(cfg.sample_every_seconds):
                return

    return body


# --- the run ---------------------------------------------------------------------------------


def soak(
    kubeconfig: str, kubectl: Kubectl, cfg: SoakConfig, output: Path, log: Log
) -> dict[str, Any]:
    kubectl(
        "apply", "--server-side", "--force-conflicts",
        "-f", str(ROOT / "crds" / "aiagents.agentfleet.io.yaml"),
    )  # fmt: skip
    kubectl("wait", "--for=condition=Established", "crd/aiagents.agentfleet.io", "--timeout=60s")
    identity = Identity(kubectl, IDENTITY, output)
    operator = OperatorProcess(
        identity.install(), output / "soak-operator.log",
        "--agent-selector", f"{SOAK_LABEL}=true", *cfg.operator_args,
    )  # fmt: skip
    api = api_client(kubeconfig)
    churn = Churn(api, cfg, Run(), log)
    run = churn.run
    for ns in churn.namespaces:
        kubectl("create", "namespace", ns, check=False)
    operator.start()
    started = meta(cfg)  # the commit and tree that run, before anything else can change them
    began = time.monotonic()
    threads = [
        Loop("observe", observe_generations(kubeconfig, run)),
        Loop("chaos", node_chaos(kubeconfig, cfg, run, log)),
        Loop("pool", node_pool(kubeconfig, cfg, run, log)),
        Loop("sampler", sampler(operator, identity, cfg, run, began)),
    ]
    try:
        for thread in threads:
            thread.start()
        interval = 1 / cfg.changes_per_second
        next_change = began
        next_report = began + 60
        while (now := time.monotonic()) - began < cfg.seconds:
            for thread in threads:
                if not thread.is_alive():
                    thread.stop()  # raises its failure
            churn.step()
            next_change += interval
            if now >= next_report:
                last = run.samples[-1] if run.samples else None
                log(
                    f"{(now - began) / 60:5.1f} min: {run.total_changes} changes, "
                    f"{sum(len(a) for a in churn.agents.values())} agents"
                    + (f", RSS {last.rss_mib} MiB, CPU {last.cpu_seconds:.0f} s" if last else "")
                )
                next_report += 60
            time.sleep(max(0.0, next_change - time.monotonic()))
        churned = time.monotonic() - began
        for thread in reversed(threads):  # the sampler first: its last sample ends the churn
            if thread.name != "observe":
                thread.stop()
        final = _final_counts(operator, identity, run, began)
        converged = _converge(kubeconfig, churn, log)
        threads[0].stop()
        result = report(cfg, run, final, churned, converged, operator)
        result["meta"] = {**started, "ended": meta(cfg)["date"]}
        result["meta"]["machine"]["load_average_at_end"] = list(os.getloadavg())
    finally:
        for thread in threads:
            thread.stopping.set()
        operator.stop()
    return result


def _final_counts(
    operator: OperatorProcess, identity: Identity, run: Run, began: float
) -> dict[str, Any]:
    stats = operator.stats()
    samples = operator.samples()
    run.samples.append(
        Sample(
            round(time.monotonic() - began, 1), stats.rss_mib, stats.cpu_seconds,
            operator.total("controller_runtime_reconcile_total", samples),
            operator.total("agentfleet_api_writes_total", samples),
            operator.total("workqueue_depth", samples), run.total_changes, identity.writes(),
        )
    )  # fmt: skip
    return {
        "reconcile_p50": histogram_quantile(
            samples, "controller_runtime_reconcile_time_seconds", 0.5
        ),
        "reconcile_p90": histogram_quantile(
            samples, "controller_runtime_reconcile_time_seconds", 0.9
        ),
        "reconcile_p99": histogram_quantile(
            samples, "controller_runtime_reconcile_time_seconds", 0.99
        ),
        "reconcile_errors": operator.total("controller_runtime_reconcile_errors_total", samples),
        "writes_by_kind": _by_label(samples, "agentfleet_api_writes_total", "kind"),
        "samples": samples,
    }


def _by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for (metric, labels), value in samples.items():
        if metric == name:
            key = dict(labels).get(label, "")
            out[key] = out.get(key, 0.0) + value
    return out


def _ready_of(agent: dict[str, Any]) -> str:
    for condition in (agent.get("status") or {}).get("conditions") or []:
        if condition["type"] == "Ready":
            return f"{condition['status']}/{condition.get('reason')}"
    return "none"


def _converge(kubeconfig: str, churn: Churn, log: Log, timeout: float = 300) -> dict[str, Any]:
    """After the churn: does every agent report its generation (nodes all back)?"""
    custom: Any = client.CustomObjectsApi(api_client(kubeconfig))
    deadline = time.monotonic() + timeout
    behind: list[str] = []
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        items = custom.list_cluster_custom_object(
            c.GROUP, c.VERSION, c.PLURAL, label_selector=f"{SOAK_LABEL}=true"
        )["items"]
        behind = [
            f"{a['metadata']['namespace']}/{a['metadata']['name']}"
            for a in items
            if (a.get("status") or {}).get("observedGeneration") != a["metadata"]["generation"]
        ]
        if not behind:
            break
        time.sleep(2)
    ready = Counter(_ready_of(a) for a in items)
    log(
        f"after the churn: {len(items)} agents, {len(behind)} behind their generation; "
        f"Ready: {dict(ready)}"
    )
    return {
        "agents": len(items),
        "behind": behind[:20],
        "behind_count": len(behind),
        "ready": dict(ready),
    }


# --- the report ------------------------------------------------------------------------------


def fit_slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return sxy / sxx if sxx else 0.0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def report(
    cfg: SoakConfig,
    run: Run,
    final: dict[str, Any],
    churned: float,
    converged: dict[str, Any],
    operator: OperatorProcess,
) -> dict[str, Any]:
    samples = run.samples
    first, last = samples[0], samples[-1]
    changes = max(run.total_changes, 1)
    half = [s for s in samples if s.t >= churned / 2]
    slope_per_hour = fit_slope([(s.t, s.rss_mib) for s in half]) * 3600 if len(half) > 2 else 0.0
    mean_rss = statistics.fmean(s.rss_mib for s in half) if half else last.rss_mib
    written = [s for s in samples if s.apiserver_writes is not None]
    apiserver_writes = (
        written[-1].apiserver_writes - written[0].apiserver_writes  # type: ignore[operator]
        if len(written) > 1
        else None
    )
    all_latencies = [x for values in run.latencies.values() for x in values]
    latency = {
        kind: {
            "count": len(values),
            "p50": percentile(values, 0.5),
            "p90": percentile(values, 0.9),
            "p99": percentile(values, 0.99),
            "max": max(values) if values else None,
        }
        for kind, values in {**run.latencies, "all": all_latencies}.items()
    }
    # Flat: what the second half's trend would add in an hour stays under 5% of the RSS.
    flat = abs(slope_per_hour) <= 0.05 * mean_rss
    return {
        "meta": meta(cfg),
        "churn_seconds": round(churned, 1),
        "changes": dict(run.changes),
        "changes_total": run.total_changes,
        "change_errors": dict(run.errors),
        "node_outages": run.outages,
        "pool_nodes": run.pool_nodes,
        "rss": {
            "first_mib": first.rss_mib,
            "last_mib": last.rss_mib,
            "max_mib": max(s.rss_mib for s in samples),
            "second_half_mean_mib": round(mean_rss, 1),
            "second_half_slope_mib_per_hour": round(slope_per_hour, 2),
            "flat": flat,
        },
        "cpu_seconds": round(last.cpu_seconds - first.cpu_seconds, 1),
        "cpu_ms_per_change": round(1000 * (last.cpu_seconds - first.cpu_seconds) / changes, 1),
        "apiserver_writes": apiserver_writes,
        "writes_per_change": round(apiserver_writes / changes, 2) if apiserver_writes else None,
        "operator_writes": round(last.operator_writes - first.operator_writes),
        "operator_writes_by_kind": final["writes_by_kind"],
        "reconciles": round(last.reconciles - first.reconciles),
        "reconcile_errors": final["reconcile_errors"],
        "reconcile_seconds": {q: final[f"reconcile_{q}"] for q in ("p50", "p90", "p99")},
        "change_to_observed_generation_seconds": latency,
        "after_churn": converged,
        "rss_samples": [[s.t, s.rss_mib] for s in samples],
        "cpu_samples": [[s.t, s.cpu_seconds] for s in samples],
        "operator_restarted": False,
        "log_tail": operator.log_tail(5),
    }


def meta(cfg: SoakConfig) -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, cwd=ROOT, check=False
        ).stdout.strip()

    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no")),
        "machine": {
            "hostname": socket.gethostname(),
            "cpus": len(os.sched_getaffinity(0)),
            "cpu_model": cpu_model,
            "memory_gib": round(memory_kib / 2**20, 1),
            "load_average": list(os.getloadavg()),
        },
        "python": platform.python_version(),
        "config": asdict(cfg),
    }


def _over_time(samples: list[list[float]], churned: float) -> str:
    """The RSS sampled nearest to each sixth of the churn: '0 min 116 MiB, 10 min ...'."""
    if not samples:
        return "n/a"
    marks = [churned * i / 6 for i in range(7)]
    picked = [min(samples, key=lambda sample: abs(sample[0] - mark)) for mark in marks]
    return ", ".join(f"{t / 60:.0f} min {rss:.0f}" for t, rss in picked) + " MiB"


def table(result: dict[str, Any]) -> str:
    """The figures as a Markdown table."""
    rss = result["rss"]
    latency = result["change_to_observed_generation_seconds"]["all"]
    rec = result["reconcile_seconds"]

    def secs(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f} s"

    rows = [
        ("churn", f"{result['churn_seconds'] / 60:.0f} min, {result['changes_total']:,} changes "
                  f"({', '.join(f'{k} {v}' for k, v in sorted(result['changes'].items()))})"),
        ("node outages / GPU nodes joined and left",
         f"{len(result['node_outages'])} / {len(result['pool_nodes'])}"),
        ("RSS over time", _over_time(result["rss_samples"], result["churn_seconds"])),
        ("RSS first / last / max",
         f"{rss['first_mib']} / {rss['last_mib']} / {rss['max_mib']} MiB"),
        ("RSS slope, second half (least squares)",
         f"{rss['second_half_slope_mib_per_hour']:+.2f} MiB/h "
         f"({'flat' if rss['flat'] else 'GROWING'}: abs(slope) <= 5% of "
         f"{rss['second_half_mean_mib']} MiB per hour)"),
        ("operator CPU per change",
         f"{result['cpu_ms_per_change']} ms ({result['cpu_seconds']} CPU-s)"),
        ("writes per change (API server, operator identity)",
         f"{result['writes_per_change']} ({result['apiserver_writes']} writes; "
         f"operator's own count {result['operator_writes']})"),
        ("reconciles / errors", f"{result['reconciles']:,} / {result['reconcile_errors']:.0f}"),
        ("reconcile time p50 / p90 / p99 (operator histogram)",
         f"{secs(rec['p50'])} / {secs(rec['p90'])} / {secs(rec['p99'])}"),
        ("change to observedGeneration p50 / p90 / p99 / max",
         f"{secs(latency['p50'])} / {secs(latency['p90'])} / {secs(latency['p99'])} / "
         f"{secs(latency['max'])} ({latency['count']} changes)"),
        ("after the churn", f"{result['after_churn']['agents']} agents, "
                            f"{result['after_churn']['behind_count']} behind their generation"),
    ]  # fmt: skip
    lines = ["| measure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)
