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

from agentfleet import quantity


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


class Autoscaling(KubeModel):
    """KEDA-driven horizontal scaling (rendered once the autoscaling issue lands)."""

    model_config = _model_config(
        ("self.minReplicas <= self.maxReplicas", "autoscaling.minReplicas must be <= maxReplicas"),
    )

    enabled: bool = True
    min_replicas: int = Field(default=1, ge=0, le=10000)
    max_replicas: int = Field(default=10, ge=1, le=10000)
    cooldown_period_seconds: int | None = Field(default=None, ge=0, le=86400)
    triggers: list[KubeObject] | None = Field(
        default=None,
        max_length=16,
        description="KEDA triggers, passed through to the ScaledObject.",
    )


class MeshMode(StrEnum):
    AMBIENT = "ambient"
    SIDECAR = "sidecar"


class MTLSMode(StrEnum):
    STRICT = "STRICT"
    PERMISSIVE = "PERMISSIVE"


class Mesh(KubeModel):
    """Istio zero-trust policy and traffic rules (rendered once the mesh issue lands)."""

    enabled: bool = True
    mode: MeshMode = MeshMode.AMBIENT
    mtls: MTLSMode = MTLSMode.STRICT
    allow_from: list[str] | None = Field(
        default=None,
        max_length=64,
        description="Service accounts (ns/name) or agent types allowed to call this agent.",
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
