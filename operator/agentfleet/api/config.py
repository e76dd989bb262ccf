"""Knobs of one operator process, set from the command line (`agentfleet run --help`).

Renderers see only `RenderConfig` (what shapes the objects); the rest is how the process
runs: concurrency, timeouts, rate limits, health thresholds and the agent policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from agentfleet.api.models import Autoscaling, MeshMode

# The Service prometheus-operator creates for the Prometheus servers of a namespace
# (kube-prometheus and kube-prometheus-stack install them in `monitoring`).
DEFAULT_PROMETHEUS_ADDRESS = "http://prometheus-operated.monitoring.svc:9090"


@dataclass(frozen=True)
class RenderConfig:
    """Installation-wide inputs of the renderers (pure data, part of every render's key)."""

    cluster_domain: str = "cluster.local"
    # GPU agents' pods wait behind a scheduling gate until the placement ledger picks their
    # node and GPUs; off, they only get node affinity on the GPU labels.
    gpu_placement: bool = True
    # Placed pods tolerate a NotReady/unreachable node this long before they are evicted and
    # placed again elsewhere (Kubernetes' default is 300 s).
    node_failure_seconds: int = 30
    # Where KEDA's prometheus triggers (requests per second, queue depth) send their queries.
    prometheus_address: str = DEFAULT_PROMETHEUS_ADDRESS
    # Per agent type (its value, e.g. "coding"): autoscaling settings that replace the
    # built-in defaults of that type; an agent's own spec.autoscaling fields win over both.
    autoscaling_defaults: dict[str, Autoscaling] = field(default_factory=dict)
    # Istio: the mode of agents whose spec.mesh.mode is unset (none: not in the mesh), the
    # trust domain of SPIFFE principals, the namespaces whose workloads may scrape metrics
    # (port 9091), and whether a mesh namespace gets a default-deny AuthorizationPolicy.
    mesh_mode: MeshMode = MeshMode.NONE
    mesh_trust_domain: str = "cluster.local"
    mesh_metrics_namespaces: tuple[str, ...] = ("monitoring",)
    mesh_default_deny: bool = True


@dataclass(frozen=True)
class Policy:
    """What an AIAgent may ask for. Anyone who can create an AIAgent gets a Deployment made
    by the operator, so pod-level privileges are refused unless the installation allows them."""

    allow_host_path: bool = False
    allow_privileged: bool = False


@dataclass(frozen=True)
class OperatorConfig:
    render: RenderConfig = field(default_factory=RenderConfig)
    policy: Policy = field(default_factory=Policy)
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    # GPU placement: "spread" (least-loaded GPU, the origin deploy agent's rule) or "binpack".
    placement_policy: Literal["spread", "binpack"] = "spread"
    # Sharding: serve only AIAgents matching this label selector (server-side).
    agent_selector: str = ""
    # Claim this share in a Lease (in `shard_namespace`) and refuse to start if another live
    # operator's share could overlap it (sharding.py). Empty: no claim (one operator).
    shard_id: str = ""
    shard_namespace: str = "agentfleet-system"
    workers: int = 8
    metrics_address: str = "0.0.0.0"
    metrics_port: int = 8080  # 0 disables the metrics endpoint
    health_address: str = "0.0.0.0"
    health_port: int = 8081  # 0 disables /healthz and /readyz
    # An agent's status is written at most once per window; the first status of a new agent
    # or a new spec waits one window, so a quick rollout is reported in one write.
    status_window_seconds: float = 1.0
    # A new agent still waiting for a worker this long after it arrived (a burst) gets
    # Reconciling=True/Queued at once: one status write more, for agents that would otherwise
    # show nothing for tens of seconds. 0 turns it off (4 writes per agent, slower first status).
    queued_status_after_seconds: float = 2.0
    # Every agent is reconciled again about this often (jittered), writing nothing if nothing
    # changed: a safety net for events that were missed or causes the operator cannot watch.
    resync_seconds: float = 600.0
    # Backoff of a failing agent doubles from `retry_base_seconds` up to this cap.
    retry_base_seconds: float = 0.5
    max_retry_seconds: float = 30.0
    # Every API call: connect and total timeouts, and a client-side rate limit for writes
    # and reads (token bucket), so a burst of thousands of agents queues here, not in memory.
    connect_timeout: float = 10.0
    request_timeout: float = 30.0
    # Chosen by `make bench`: at 50 QPS the client-side limit alone made 1,000 agents take
    # 2.1x the raw-apply baseline; at 200 the API server is the limit (1.16x).
    qps: float = 200.0
    burst: int = 400
    # Watches: the server ends each watch after this long; a watch without any event or
    # bookmark for `watch_inactivity_seconds` is reconnected.
    watch_server_timeout: int = 300
    watch_inactivity_seconds: float = 70.0
    # /healthz turns unhealthy when a watch has been silent, or a queued agent has waited,
    # for longer than this.
    unhealthy_after_seconds: float = 300.0
