"""The AIAgent API: pydantic models that are the single source of the CRD schema.

`agentfleet crd` turns these into `crds/aiagents.agentfleet.io.yaml` (see crd.py); the
operator parses every AIAgent it sees with the same models. Validation that Kubernetes
can do itself lives here too, as OpenAPI constraints and CEL rules (`x-kubernetes-validations`),
so a bad spec is refused by `kubectl apply` before the operator ever sees it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from agentfleet.api import quantity


def _check_quantity(value: object) -> str:
    if isinstance(value, bool) or not quantity.is_quantity(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 24Gi, 500m, 2)")
    return str(value)


Quantity = Annotated[
    str,
    BeforeValidator(_check_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": quantity.PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]

# Kubernetes types passed through verbatim to the Pod spec (affinity, probes, volumes...).
# The API server validates them when the Deployment is applied; a rejection becomes a
# Stalled condition with the server's message.
KubeObject = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def _rules(*rules: tuple[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}


# A list the API server keys by `name`, so it refuses duplicate names by itself.
_LIST_MAP_BY_NAME: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["name"],
}


def _model_config(*rules: tuple[str, str]) -> ConfigDict:
    return ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        json_schema_extra=_rules(*rules) if rules else None,
    )


class KubeModel(BaseModel):
    model_config = _model_config()


class AgentType(StrEnum):
    """The agent roles of the fleet; `custom` is anything else."""

    ORCHESTRATOR = "orchestrator"
    CODING = "coding"
    TESTING = "testing"
    SECURITY = "security"
    COMPLIANCE = "compliance"
    DOCUMENTATION = "documentation"
    DISCOVERY = "discovery"
    CUSTOM = "custom"


# --- container environment ---------------------------------------------------------------


class KeySelector(KubeModel):
    """A key of a Secret or ConfigMap in the agent's namespace."""

    name: str = Field(min_length=1, max_length=253)
    key: str = Field(min_length=1, max_length=253)
    optional: bool | None = None


class FieldSelector(KubeModel):
    field_path: str = Field(min_length=1, max_length=256)
    api_version: str | None = None


class ResourceFieldSelector(KubeModel):
    resource: str = Field(min_length=1, max_length=64)
    container_name: str | None = None
    divisor: Quantity | None = None


class EnvVarSource(KubeModel):
    model_config = _model_config(
        (
            "[has(self.secretKeyRef), has(self.configMapKeyRef), has(self.fieldRef),"
            " has(self.resourceFieldRef)].exists_one(x, x)",
            "valueFrom needs exactly one of secretKeyRef, configMapKeyRef, fieldRef,"
            " resourceFieldRef",
        )
    )

    secret_key_ref: KeySelector | None = None
    config_map_key_ref: KeySelector | None = None
    field_ref: FieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None


class EnvVar(KubeModel):
    model_config = _model_config(
        (
            "!(has(self.value) && has(self.valueFrom))",
            "an env var has either value or valueFrom, not both",
        ),
    )

    name: str = Field(min_length=1, max_length=256)
    value: str | None = None
    value_from: EnvVarSource | None = None


class EnvFromSource(KubeModel):
    model_config = _model_config(
        (
            "has(self.configMapRef) != has(self.secretRef)",
            "envFrom needs exactly one of configMapRef or secretRef",
        ),
    )

    prefix: str | None = Field(default=None, max_length=64)
    config_map_ref: LocalRef | None = None
    secret_ref: LocalRef | None = None


class LocalRef(KubeModel):
    name: str = Field(min_length=1, max_length=253)
    optional: bool | None = None


class ResourceRequirements(KubeModel):
    """Container requests and limits. GPUs are asked for with `gpu`, not here."""

    requests: dict[str, Quantity] | None = None
    limits: dict[str, Quantity] | None = None


# --- GPU, autoscaling, mesh ----------------------------------------------------------------


class GPUVendor(StrEnum):
    NVIDIA = "nvidia"
    AMD = "amd"


class GPUSharing(StrEnum):
    """exclusive: whole GPUs; shared: a slice of a time-sliced or MPS-shared GPU."""

    EXCLUSIVE = "exclusive"
    SHARED = "shared"


class GPU(KubeModel):
    """GPUs per replica. `vram` is the memory each replica needs on each GPU."""

    model_config = _model_config(
        ("!has(self.vram) || self.count >= 1", "gpu.vram requires gpu.count >= 1"),
        ("!has(self.product) || self.count >= 1", "gpu.product requires gpu.count >= 1"),
    )

    count: int = Field(default=1, ge=0, le=16, description="GPUs per replica (0 = none).")
    vram: Quantity | None = Field(default=None, description="VRAM needed per GPU, e.g. 24Gi.")
    product: str | None = Field(
        default=None,
        max_length=128,
        description="Exact GPU product label, e.g. NVIDIA-A100-SXM4-80GB.",
    )
    vendor: GPUVendor = GPUVendor.NVIDIA
    sharing: GPUSharing = GPUSharing.EXCLUSIVE


# "Some trigger is neither cpu nor memory". cpu and memory are computed by the HPA from
# running pods, so a ScaledObject with only those cannot wake from zero (minReplicas 0,
# idleReplicas) and its fallback has no external metric to replace.
_EVENT_TRIGGER = "self.triggers.exists(t, !has(t.cpu) && !has(t.memory))"


class PrometheusThreshold(KubeModel):
    """KEDA's prometheus scaler targets: `threshold` is the value per replica the HPA aims
    for (AverageValue), `activationThreshold` the value above which a scaled-to-zero agent
    wakes up."""

    threshold: float = Field(gt=0, description="Target value per replica.")
    activation_threshold: float | None = Field(
        default=None, ge=0, description="Wake from zero above this value (default 0)."
    )


class RequestsPerSecond(PrometheusThreshold):
    """Requests per second per replica, from the agent's own metrics (port 9091), queried
    from the Prometheus the operator is configured with (`--prometheus-address`)."""

    metric: str = Field(
        default="http_requests_total",
        max_length=200,
        pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$",
        description="The counter of handled requests the agent exposes.",
    )
    window: str = Field(
        default="2m",
        pattern=r"^[0-9]+(s|m|h)$",
        description="Rate window of the PromQL query, e.g. 1m.",
    )


class QueueDepth(PrometheusThreshold):
    """Work waiting for the agent, as any PromQL query that returns one number."""

    query: str = Field(min_length=1, max_length=4096, description="PromQL, e.g. sum(queue_len).")


class ResourceUtilization(KubeModel):
    """Average CPU or memory use across the agent's pods, as a percentage of the container's
    request. The agent must set that request (spec.resources.requests): the CRD refuses a
    cpu or memory trigger without it."""

    utilization: int = Field(ge=1, le=1000, description="Target percent of the request.")


class AuthenticationRef(KubeModel):
    name: str = Field(min_length=1, max_length=253)
    kind: Literal["TriggerAuthentication", "ClusterTriggerAuthentication"] | None = None


class Scaler(KubeModel):
    """Any other KEDA scaler (kafka, rabbitmq, aws-sqs-queue, cron ...), passed through:
    https://keda.sh/docs/scalers/. Secrets go in a TriggerAuthentication it names."""

    model_config = _model_config(
        (
            "!(self.type in ['cpu', 'memory'])",
            "use the cpu or memory trigger instead of scaler.type cpu/memory: it checks that"
            " the agent has the resource request the HPA needs",
        ),
    )

    type: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    metadata: dict[str, str] = Field(default_factory=dict)
    authentication_ref: AuthenticationRef | None = None
    metric_type: Literal["AverageValue", "Value", "Utilization"] | None = None
    use_cached_metrics: bool | None = None


class Trigger(KubeModel):
    """One reason to scale: exactly one of the fields."""

    model_config = _model_config(
        (
            "[has(self.requestsPerSecond), has(self.queueDepth), has(self.cpu), has(self.memory),"
            " has(self.scaler)].exists_one(x, x)",
            "a trigger needs exactly one of requestsPerSecond, queueDepth, cpu, memory, scaler",
        ),
    )

    requests_per_second: RequestsPerSecond | None = None
    queue_depth: QueueDepth | None = None
    cpu: ResourceUtilization | None = None
    memory: ResourceUtilization | None = None
    scaler: Scaler | None = None


class FallbackBehavior(StrEnum):
    STATIC = "static"
    CURRENT_REPLICAS = "currentReplicas"
    CURRENT_REPLICAS_IF_HIGHER = "currentReplicasIfHigher"
    CURRENT_REPLICAS_IF_LOWER = "currentReplicasIfLower"


class Fallback(KubeModel):
    """Replicas to run after `failureThreshold` failed metric reads in a row."""

    failure_threshold: int = Field(ge=1, le=1000)
    replicas: int = Field(ge=0, le=10000)
    behavior: FallbackBehavior | None = None


class Autoscaling(KubeModel):
    """Horizontal scaling by KEDA: a ScaledObject that owns the Deployment's replicas.

    Every field left out comes from the operator's defaults for the agent's type (the
    rollout plan's ranges, e.g. coding 5-100, unless the installation overrides them)."""

    model_config = _model_config(
        (
            "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <="
            " self.maxReplicas",
            "autoscaling.minReplicas must be <= maxReplicas",
        ),
        (
            "!has(self.minReplicas) || self.minReplicas > 0 || (has(self.triggers) && "
            + _EVENT_TRIGGER
            + ")",
            "autoscaling.minReplicas 0 (scale to zero) needs a trigger other than cpu or"
            " memory in autoscaling.triggers: KEDA cannot wake an agent from zero on the"
            " CPU or memory use of pods that do not run",
        ),
        (
            "!has(self.idleReplicas) || self.idleReplicas == 0",
            "autoscaling.idleReplicas can only be 0 (KEDA scales an idle agent to zero)",
        ),
        (
            "!has(self.idleReplicas) || !has(self.minReplicas) || self.idleReplicas <"
            " self.minReplicas",
            "autoscaling.idleReplicas must be < minReplicas (KEDA refuses idle >= min)",
        ),
        (
            "!has(self.idleReplicas) || (has(self.triggers) && " + _EVENT_TRIGGER + ")",
            "autoscaling.idleReplicas needs a trigger other than cpu or memory in"
            " autoscaling.triggers: only such a trigger can wake the agent again",
        ),
        (
            "!has(self.fallback) || !has(self.triggers) || " + _EVENT_TRIGGER,
            "autoscaling.fallback needs a trigger other than cpu or memory: KEDA's fallback"
            " replaces failed external metrics, and cpu/memory are not external",
        ),
    )

    enabled: bool = True
    min_replicas: int | None = Field(
        default=None, ge=0, le=10000, description="Default: the agent type's minimum."
    )
    max_replicas: int | None = Field(
        default=None, ge=1, le=10000, description="Default: the agent type's maximum."
    )
    idle_replicas: int | None = Field(
        default=None,
        ge=0,
        description="0: scale to zero while no trigger is active (KEDA idleReplicaCount).",
    )
    polling_interval_seconds: int | None = Field(default=None, ge=1, le=3600)
    cooldown_period_seconds: int | None = Field(default=None, ge=0, le=86400)
    fallback: Fallback | None = None
    behavior: KubeObject | None = Field(
        default=None,
        description="HorizontalPodAutoscaler behavior (scaleUp/scaleDown policies), copied"
        " to the HPA that KEDA creates.",
    )
    paused: bool | None = Field(
        default=None, description="Stop scaling and keep the current replica count."
    )
    triggers: list[Trigger] | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description="Default: requests per second on the agent's metrics.",
    )


def _resource_trigger_rule(resource: str) -> tuple[str, str]:
    """A cpu/memory trigger is refused, not defaulted, without the container's request:
    utilization is a percentage of it, and inventing a request would change scheduling."""
    return (
        "!has(self.autoscaling) || (has(self.autoscaling.enabled) && !self.autoscaling.enabled)"
        f" || !has(self.autoscaling.triggers) || !self.autoscaling.triggers.exists(t,"
        f" has(t.{resource})) || (has(self.resources) && ((has(self.resources.requests) &&"
        f" '{resource}' in self.resources.requests) || (has(self.resources.limits) &&"
        f" '{resource}' in self.resources.limits)))",
        f"an autoscaling {resource} trigger needs spec.resources.requests.{resource} (or a"
        f" {resource} limit): the HPA measures {resource} use as a percentage of the request",
    )


class MeshMode(StrEnum):
    """ambient: ztunnel on each node (plus a waypoint for L7 rules); sidecar: an Envoy in
    every pod; none: the agent is not in the mesh and no Istio objects exist for it."""

    AMBIENT = "ambient"
    SIDECAR = "sidecar"
    NONE = "none"


class WaypointScope(StrEnum):
    """Which waypoint (ambient's L7 proxy) serves the agent's Service: none, the one
    waypoint of the namespace that every agent choosing `namespace` shares, or its own."""

    NONE = "none"
    NAMESPACE = "namespace"
    AGENT = "agent"


class MTLSMode(StrEnum):
    STRICT = "STRICT"
    PERMISSIVE = "PERMISSIVE"


class MeshPort(StrEnum):
    """The agent ports a caller may be allowed on (health stays with the kubelet)."""

    HTTP = "http"
    GRPC = "grpc"
    METRICS = "metrics"


class ServiceAccountRef(KubeModel):
    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)
    namespace: str | None = Field(
        default=None,
        max_length=63,
        pattern=DNS_LABEL,
        description="Default: the agent's namespace.",
    )


class MeshCaller(KubeModel):
    """Who may call the agent: exactly one of an agent of this namespace (by name), every
    agent of a type in this namespace (the list follows as agents come and go), every
    workload of a namespace, or one ServiceAccount. Resolved to SPIFFE principals."""

    model_config = _model_config(
        (
            "[has(self.agent), has(self.agentType), has(self.namespace),"
            " has(self.serviceAccount)].exists_one(x, x)",
            "an allowFrom entry names exactly one of agent, agentType, namespace, serviceAccount",
        ),
    )

    agent: str | None = Field(default=None, max_length=63, pattern=DNS_LABEL)
    agent_type: AgentType | None = None
    namespace: str | None = Field(default=None, max_length=63, pattern=DNS_LABEL)
    service_account: ServiceAccountRef | None = None
    ports: list[MeshPort] | None = Field(
        default=None,
        min_length=1,
        max_length=3,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Default: http and grpc.",
    )


# A Gateway API duration (HTTPRoute timeouts): also valid for Istio's duration fields.
Duration = Annotated[str, Field(max_length=32, pattern=r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")]


class Retries(KubeModel):
    """Retries of failed calls to the agent. Mesh agents get their type's retries unless
    `enabled: false` (the installation's --traffic-defaults can change them per type)."""

    enabled: bool = True
    attempts: int = Field(default=2, ge=1, le=10)
    per_try_timeout: Duration | None = None
    retry_on: str | None = Field(
        default=None,
        max_length=256,
        pattern=r"^[a-z0-9-]+(,[a-z0-9-]+)*$",
        description="Envoy retry conditions, e.g. 5xx,connect-failure (default: Istio's).",
    )


class OutlierDetection(KubeModel):
    """Eject a replica from load balancing after consecutive 5xx answers. Mesh agents get
    their type's outlier detection unless `enabled: false`."""

    enabled: bool = True
    consecutive_5xx_errors: int = Field(default=5, ge=1, le=1000, alias="consecutive5xxErrors")
    interval: Duration = "10s"
    base_ejection_time: Duration = "30s"
    max_ejection_percent: int = Field(default=50, ge=0, le=100)


class ConnectionPool(KubeModel):
    """Limits per caller proxy towards the agent (a circuit breaker)."""

    max_connections: int | None = Field(default=None, ge=1, le=1_000_000)
    max_pending_requests: int | None = Field(default=None, ge=1, le=1_000_000)
    max_requests: int | None = Field(default=None, ge=1, le=1_000_000)
    max_requests_per_connection: int | None = Field(default=None, ge=1, le=1_000_000)


class FaultDelay(KubeModel):
    percent: float = Field(gt=0, le=100)
    fixed_delay: Duration


class FaultAbort(KubeModel):
    """Answer a share of requests with an error: `httpStatus` on http, gRPC UNAVAILABLE
    on grpc."""

    percent: float = Field(gt=0, le=100)
    http_status: int = Field(default=503, ge=400, le=599)


class FaultInjection(KubeModel):
    """Chaos runs only: delays and errors injected on the agent's http and grpc ports."""

    model_config = _model_config(
        ("has(self.delay) || has(self.abort)", "faultInjection needs a delay or an abort"),
    )

    delay: FaultDelay | None = None
    abort: FaultAbort | None = None


class Traffic(KubeModel):
    """Resilience rules for calls to the agent (applied by the callers' sidecars, or by the
    waypoint in ambient mode). Retries and outlier detection are on by default, with the
    agent type's settings; a field set here replaces the default one."""

    timeout: Duration | None = None
    retries: Retries | None = Field(
        default=None, description="Default: the agent type's ({enabled: false} turns them off)."
    )
    outlier_detection: OutlierDetection | None = Field(
        default=None, description="Default: the agent type's ({enabled: false} turns it off)."
    )
    connection_pool: ConnectionPool | None = None
    fault_injection: FaultInjection | None = None


class GRPCMode(StrEnum):
    """proxy: the agent's gRPC goes through the mesh's proxy like any HTTP/2; proxyless: the
    agent's gRPC library takes routes, endpoints and certificates from istiod over xDS
    (Istio's `grpc-agent` injection template: an istio-agent without Envoy)."""

    PROXY = "proxy"
    PROXYLESS = "proxyless"


class Mesh(KubeModel):
    """Istio zero-trust policy and traffic rules: mTLS, who may call the agent, a waypoint
    in ambient mode, timeouts, retries, circuit breaking and fault injection."""

    model_config = _model_config(
        (
            "!(has(self.mode) && self.mode != 'ambient' && has(self.waypoint) &&"
            " self.waypoint != 'none')",
            "mesh.waypoint is for ambient mode (a sidecar applies L7 rules itself)",
        ),
        (
            "!(has(self.mode) && self.mode == 'ambient' && has(self.waypoint) &&"
            " self.waypoint == 'none' && has(self.traffic))",
            "mesh.traffic needs a waypoint in ambient mode (ztunnel is L4 only): set"
            " mesh.waypoint to namespace or agent, or leave it unset",
        ),
        (
            "!has(self.grpc) || self.grpc != 'proxyless' || (has(self.mode) && self.mode =="
            " 'sidecar')",
            "mesh.grpc: proxyless needs mesh.mode: sidecar (Istio injects proxyless gRPC's"
            " istio-agent like a sidecar; ambient has no proxyless mode)",
        ),
    )

    mode: MeshMode | None = Field(
        default=None, description="Default: the operator's --mesh-mode (none unless set)."
    )
    waypoint: WaypointScope | None = Field(
        default=None,
        description="Ambient only. Default: namespace when traffic rules are set, else none.",
    )
    mtls: MTLSMode = MTLSMode.STRICT
    allow_from: list[MeshCaller] | None = Field(
        default=None,
        max_length=64,
        description="Callers allowed on the agent's ports; everyone else is denied.",
    )
    traffic: Traffic | None = None
    grpc: GRPCMode | None = Field(
        default=None,
        description="proxyless: the agent's gRPC speaks xDS itself (Istio's grpc-agent"
        " template; sidecar mode only). Default: proxy.",
    )


# --- observability, multi-cluster ---------------------------------------------------------


class Tracing(KubeModel):
    """OpenTelemetry for the agent's pods (OTEL_* environment: endpoint, service name,
    resource attributes, sampler) and, in the mesh, an Istio Telemetry object that makes
    the agent's proxy report spans at the same rate."""

    enabled: bool = True
    sampling_percent: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Share of new traces recorded. Default: the operator's"
        " --agent-tracing-sampling-percent.",
    )
    endpoint: str | None = Field(
        default=None,
        max_length=512,
        pattern=r"^https?://[^\s,]+$",
        description="OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT), e.g."
        " http://otel-collector.observability:4317. Default: the operator's"
        " --agent-tracing-endpoint.",
    )


class Observability(KubeModel):
    tracing: Tracing | None = Field(
        default=None,
        description="Default: on when the operator has an --agent-tracing-endpoint.",
    )


class Multicluster(KubeModel):
    """Multi-Cluster Services: the agent's Service exported to the clusters of its
    ClusterSet, reachable as <name>.<namespace>.svc.clusterset.local."""

    export: bool = Field(
        default=False,
        description="Create a ServiceExport (multicluster.x-k8s.io/v1alpha1); in ambient mode"
        " the Service (and its waypoint) are also marked istio.io/global.",
    )


# --- placement, storage, probes ------------------------------------------------------------


class Toleration(KubeModel):
    model_config = _model_config(
        (
            "self.operator != 'Exists' || !has(self.value)",
            "a toleration with operator Exists takes no value",
        ),
    )

    key: str | None = Field(default=None, max_length=316)
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = Field(default=None, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class Placement(KubeModel):
    """Scheduling constraints passed through to the Pod spec."""

    node_selector: dict[str, str] | None = None
    tolerations: list[Toleration] | None = Field(default=None, max_length=64)
    affinity: KubeObject | None = None
    topology_spread_constraints: list[KubeObject] | None = Field(default=None, max_length=16)


class Volume(KubeModel):
    """A Pod volume (any Kubernetes volume source), passed through."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL)


class VolumeMount(KubeModel):
    name: str = Field(min_length=1, max_length=63)
    mount_path: str = Field(min_length=1, max_length=1024)
    sub_path: str | None = Field(default=None, max_length=1024)
    read_only: bool | None = None


class Probes(KubeModel):
    """Replace the default probes (liveness /healthz, readiness /readyz on port 8081)."""

    liveness: KubeObject | None = None
    readiness: KubeObject | None = None
    startup: KubeObject | None = None


class ImagePullPolicy(StrEnum):
    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class AgentSpec(KubeModel):
    """Desired state of one AI agent: its container, size, GPUs, scaling and mesh policy."""

    model_config = _model_config(
        (
            "!has(self.volumeMounts) || self.volumeMounts.all(m, has(self.volumes) &&"
            " self.volumes.exists(v, v.name == m.name))",
            "every volumeMounts[].name must match a volumes[].name",
        ),
        _resource_trigger_rule("cpu"),
        _resource_trigger_rule("memory"),
        (
            "!(has(self.multicluster) && has(self.multicluster.export) && self.multicluster.export"
            " && has(self.mesh) && has(self.mesh.waypoint) && self.mesh.waypoint == 'namespace')",
            "multicluster.export cannot use the namespace waypoint: Istio makes every service"
            " behind a global waypoint global; use mesh.waypoint: agent (the default for an"
            " exported agent) or none",
        ),
    )

    agent_type: AgentType = Field(description="Role of the agent in the fleet.")
    image: str = Field(min_length=1, max_length=512)
    image_pull_policy: ImagePullPolicy | None = None
    image_pull_secrets: list[LocalRef] | None = Field(default=None, max_length=16)
    command: list[str] | None = Field(default=None, max_length=64)
    args: list[str] | None = Field(default=None, max_length=256)
    env: list[EnvVar] | None = Field(
        default=None, max_length=256, json_schema_extra=_LIST_MAP_BY_NAME
    )
    env_from: list[EnvFromSource] | None = Field(default=None, max_length=32)
    resources: ResourceRequirements | None = None
    replicas: int = Field(
        default=1,
        ge=0,
        le=10000,
        description="Fixed replica count; ignored while autoscaling is enabled.",
    )
    gpu: GPU | None = None
    autoscaling: Autoscaling | None = None
    mesh: Mesh | None = None
    observability: Observability | None = None
    multicluster: Multicluster | None = None
    placement: Placement | None = None
    runtime_class_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="RuntimeClass for sandboxed runtimes such as Kata Containers or"
        " Firecracker microVMs.",
    )
    service_account_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="Run as this existing ServiceAccount instead of the one created per agent.",
    )
    volumes: list[Volume] | None = Field(default=None, max_length=64)
    volume_mounts: list[VolumeMount] | None = Field(default=None, max_length=64)
    probes: Probes | None = None
    automount_service_account_token: bool | None = Field(
        default=None,
        description="Mount the ServiceAccount's API token into the agent's pods (off by default).",
    )
    security_context: KubeObject | None = Field(
        default=None,
        description="Container securityContext, merged over the restricted default (your keys"
        " win). Privileged settings are refused unless the operator allows them.",
    )
    pod_security_context: KubeObject | None = Field(
        default=None,
        description="Pod securityContext, merged over the restricted default (your keys win).",
    )


# --- status ---------------------------------------------------------------------------------


class Condition(KubeModel):
    """metav1.Condition."""

    type: str = Field(max_length=316)
    status: Literal["True", "False", "Unknown"]
    observed_generation: int | None = Field(default=None, ge=0)
    last_transition_time: str = Field(json_schema_extra={"format": "date-time"})
    reason: str = Field(max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = Field(default="", max_length=32768)


class Endpoints(KubeModel):
    """Stable in-cluster addresses of the agent, one per fixed port."""

    http: str
    grpc: str
    metrics: str
    health: str


class PlacedReplica(KubeModel):
    """One replica's placement decision: its node, GPU indices and VRAM per GPU."""

    node: str
    gpus: list[int]
    vram_mi_b: int = Field(alias="vramMiB", ge=0)


class PlacementStatus(KubeModel):
    summary: str = Field(
        description="Where the agent runs or what it needs, e.g. 1x NVIDIA >=24Gi."
    )
    replicas: list[PlacedReplica] | None = Field(
        default=None, description="The placement ledger's decision for each GPU replica."
    )
    committed_vram: str | None = Field(
        default=None,
        alias="committedVRAM",
        description="VRAM the agent's replicas hold, over all GPUs (e.g. 48Gi).",
    )


class AgentStatus(KubeModel):
    observed_generation: int | None = None
    replicas: int | None = None
    ready_replicas: int | None = None
    available_replicas: int | None = None
    selector: str | None = None
    service_account_name: str | None = None
    endpoints: Endpoints | None = None
    placement: PlacementStatus | None = None
    conditions: list[Condition] | None = Field(
        default=None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class ObjectMeta(BaseModel):
    """The parts of metadata the operator uses."""

    model_config = ConfigDict(extra="ignore")

    name: str
    namespace: str = "default"
    uid: str = ""
    generation: int = 0
    labels: dict[str, str] = Field(default_factory=dict)


class AIAgent(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    metadata: ObjectMeta
    spec: AgentSpec

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> AIAgent:
        return cls.model_validate(
            {"metadata": body.get("metadata", {}), "spec": body.get("spec", {})}
        )


EnvFromSource.model_rebuild()
