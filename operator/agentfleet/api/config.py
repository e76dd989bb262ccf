"""Knobs of one operator process: the one description of `agentfleet run`'s flags.

Every field says its flag's help text here (`setting(...)`); runtime/command.py builds the
`agentfleet run` command from these fields, so a default is written once, and the chart's
rendered arguments are parsed by that same command in the tests. Renderers see only
`RenderConfig` (what shapes the objects); the rest is how the process runs: concurrency,
timeouts, rate limits, health thresholds and the agent policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from agentfleet.api.constants import OPERATOR_NAMESPACE
from agentfleet.api.models import Autoscaling, MeshMode, Traffic

# The Service prometheus-operator creates for the Prometheus servers of a namespace
# (kube-prometheus and kube-prometheus-stack install them in `monitoring`).
DEFAULT_PROMETHEUS_ADDRESS = "http://prometheus-operated.monitoring.svc:9090"


def setting(
    default: Any = None,
    help: str = "",
    *,
    flag: str | None = None,
    short: str | None = None,
    envvar: str | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    from_file: bool = False,
    factory: Any = None,
) -> Any:
    """A field that is also an `agentfleet run` flag (`--<field-name>` unless `flag` says
    otherwise). `from_file`: the flag takes a file that runtime/command.py reads into the value."""
    metadata = {
        "help": help,
        "flag": flag,
        "short": short,
        "envvar": envvar,
        "min": minimum,
        "max": maximum,
        "from_file": from_file,
    }
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class RenderConfig:
    """Installation-wide inputs of the renderers (pure data, part of every render's key)."""

    cluster_domain: str = setting("cluster.local", "DNS suffix used in status.endpoints.")
    # GPU agents' pods wait behind a scheduling gate until the placement ledger picks their
    # node and GPUs; off, they only get node affinity on the GPU labels.
    gpu_placement: bool = setting(
        True,
        "Place GPU agents' pods from the VRAM ledger (scheduling gates); off: node affinity on"
        " GPU labels only.",
        flag="placement",
    )
    node_failure_seconds: int = setting(
        30, "Placed pods leave a NotReady/unreachable node after this long.", minimum=0
    )
    prometheus_address: str = setting(
        DEFAULT_PROMETHEUS_ADDRESS,
        "Prometheus that KEDA's requests-per-second and queue-depth triggers query.",
    )
    # Per agent type (its value, e.g. "coding"): autoscaling settings that replace the
    # built-in defaults of that type; an agent's own spec.autoscaling fields win over both.
    autoscaling_defaults: dict[str, Autoscaling] = setting(
        help="YAML file: agent type -> spec.autoscaling fields (minReplicas, maxReplicas,"
        " triggers ...) that replace the built-in defaults of that type.",
        from_file=True,
        factory=dict,
    )
    mesh_mode: MeshMode = setting(
        MeshMode.NONE, "Istio mode of agents whose spec.mesh.mode is unset."
    )
    mesh_trust_domain: str = setting(
        "cluster.local", "Trust domain of the SPIFFE principals in AuthorizationPolicies."
    )
    mesh_metrics_namespaces: tuple[str, ...] = setting(
        ("monitoring",),
        "Namespace whose workloads may scrape the agents' metrics port (9091) in the mesh;"
        " repeat for several, pass '' for none.",
        flag="mesh-metrics-namespace",
    )
    mesh_default_deny: bool = setting(
        True, "Give every namespace with mesh agents a default-deny AuthorizationPolicy."
    )
    # Per agent type (its value): spec.mesh.traffic fields that replace the built-in defaults
    # of that type (render/traffic.py); an agent's own fields win over both.
    traffic_defaults: dict[str, Traffic] = setting(
        help="YAML file: agent type -> spec.mesh.traffic fields (retries, outlierDetection,"
        " timeout, connectionPool) that replace the built-in defaults of that type;"
        " {enabled: false} turns retries or outlier detection off.",
        from_file=True,
        factory=dict,
    )
    mesh_tracing_provider: str = setting(
        "",
        "Istio tracing provider (a meshConfig extensionProvider) named in the agents'"
        " Telemetry objects; empty: the mesh's default provider.",
    )
    agent_tracing_endpoint: str = setting(
        "",
        "OTLP endpoint given to agents' pods (OTEL_EXPORTER_OTLP_ENDPOINT). Set, every agent is"
        " traced unless its spec.observability.tracing.enabled is false.",
    )
    agent_tracing_sampling_percent: float = setting(
        1.0,
        "Share of new traces agents (and their mesh proxies) record, unless"
        " spec.observability.tracing.samplingPercent says otherwise.",
        minimum=0,
        maximum=100,
    )


@dataclass(frozen=True)
class Policy:
    """What an AIAgent may ask for. Anyone who can create an AIAgent gets a Deployment made
    by the operator, so pod-level privileges are refused unless the installation allows them."""

    allow_host_path: bool = setting(False, "Let agents mount hostPath volumes.")
    allow_privileged: bool = setting(
        False, "Let agents ask for privileged / root / added-capability security contexts."
    )


@dataclass(frozen=True)
class OperatorConfig:
    render: RenderConfig = field(default_factory=RenderConfig)
    policy: Policy = field(default_factory=Policy)
    namespaces: tuple[str, ...] = setting(
        (), "Serve only these namespaces (default: all).", flag="namespace", short="n"
    )
    placement_policy: Literal["spread", "binpack"] = setting(
        "spread", "spread (least-loaded GPU, the origin deploy agent's rule) or binpack."
    )
    agent_selector: str = setting(
        "",
        "Serve only AIAgents with these labels (server-side selector, e.g."
        " agentfleet.io/shard=a): one way to split a fleet across operators.",
    )
    shard_id: str = setting(
        "",
        "Claim this operator's share (namespaces + --agent-selector) in a Lease; refuse to"
        " start if another live operator's share could overlap it.",
    )
    shard_namespace: str = setting(
        OPERATOR_NAMESPACE,
        "Where the shard Lease lives (default: this Pod's namespace).",
        envvar="POD_NAMESPACE",
    )
    workers: int = setting(8, "Concurrent reconciles.", minimum=1)
    tracing_endpoint: str = setting(
        "",
        "OTLP/HTTP endpoint (e.g. http://jaeger-collector:4318) of the operator's own traces:"
        " a span per reconcile and placement decision. Empty: tracing off (the OpenTelemetry"
        " SDK is not even imported).",
        envvar="OTEL_EXPORTER_OTLP_ENDPOINT",
    )
    tracing_sampling_percent: float = setting(
        100.0,
        "Share of the operator's reconciles that are traced (percent).",
        minimum=0,
        maximum=100,
    )
    log_format: Literal["text", "json"] = setting(
        "text", "text, or json: one JSON object per line, with the trace id while tracing."
    )
    log_level: Literal["debug", "info", "warning", "error"] = setting(
        "info", "Lowest level logged (--verbose: debug)."
    )
    metrics_address: str = setting("0.0.0.0", "Prometheus metrics bind address.")
    metrics_port: int = setting(8080, "Prometheus metrics port (0 disables).")
    health_address: str = setting("0.0.0.0", "/healthz and /readyz bind address.")
    health_port: int = setting(8081, "/healthz and /readyz port (0 disables).")
    status_window_seconds: float = setting(
        1.0,
        "At most one status write per agent per window; the first status of a new agent or"
        " spec waits one window, so a quick rollout is reported in one write.",
        minimum=0,
    )
    queued_status_after_seconds: float = setting(
        2.0,
        "Show Reconciling/Queued on a new agent still waiting for a worker after this long"
        " (one status write more under a burst; 0 disables).",
        minimum=0,
    )
    resync_seconds: float = setting(
        600.0,
        "Reconcile every agent again about this often (jittered; 0 disables): a safety net"
        " for missed events, writing nothing when nothing changed.",
    )
    retry_base_seconds: float = setting(0.5, "First delay of a failing agent's backoff.")
    max_retry_seconds: float = setting(30.0, "Cap of the per-agent retry backoff.")
    connect_timeout: float = setting(10.0, "Connect timeout of API requests (s).")
    request_timeout: float = setting(30.0, "Total timeout of one API request (s).")
    # Chosen by `make bench`: at 50 QPS the client-side limit alone made 1,000 agents take
    # 2.1x the raw-apply baseline; at 200 the API server is the limit.
    qps: float = setting(200.0, "Client-side rate limit of API requests per second.")
    burst: int = setting(400, "Requests allowed at once above --qps.")
    watch_server_timeout: int = setting(300, "The server ends each watch after (s).")
    watch_inactivity_seconds: float = setting(
        70.0, "Reconnect a watch silent for this long (no event or bookmark)."
    )
    unhealthy_after_seconds: float = setting(
        300.0, "/healthz fails when a watch or the work queue is stuck this long."
    )
