"""Every name a user can see: API coordinates, ports, label keys, condition types and reasons.

Imported by the operator, the renderers and the tests alike, so a rename happens in one place.
"""

from dataclasses import dataclass
from typing import Final

GROUP: Final = "agentfleet.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "AIAgent"
PLURAL: Final = "aiagents"
SINGULAR: Final = "aiagent"
SHORT_NAME: Final = "aia"
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

# Leases (the node agent's heartbeats, shard claims) and the RBAC rules that let us write them.
COORDINATION_GROUP: Final = "coordination.k8s.io"
COORDINATION_API: Final = f"{COORDINATION_GROUP}/v1"
# CustomResourceDefinitions: ours (crd.py), and the optional features' ones we watch.
CRD_GROUP: Final = "apiextensions.k8s.io"
CRD_API: Final = f"{CRD_GROUP}/v1"
CRD_PLURAL: Final = "customresourcedefinitions"

# Where the operator, the node agent and the API run unless told otherwise ($POD_NAMESPACE in
# a Pod): the chart's and the plain manifests' namespace, home of their Leases.
OPERATOR_NAMESPACE: Final = "agentfleet-system"

# One field manager for every write the operator makes (server-side apply and status).
FIELD_MANAGER: Final = "agentfleet"
# Except one: when autoscaling takes over a Deployment's spec.replicas, this manager applies
# the live count first, so that our apply dropping the field does not reset it to 1.
HANDOVER_FIELD_MANAGER: Final = "agentfleet-handover"

# The container that runs the agent, and its fixed ports (same in every agent Pod).
CONTAINER_NAME: Final = "agent"


@dataclass(frozen=True)
class Port:
    """Name, number and Service appProtocol of one of the four fixed agent ports."""

    name: str
    number: int
    app_protocol: str
    endpoint_key: str  # its key in status.endpoints


HTTP: Final = Port("http", 8080, "http", "http")
GRPC: Final = Port("grpc", 9090, "grpc", "grpc")
METRICS: Final = Port("http-metrics", 9091, "http", "metrics")
HEALTH: Final = Port("http-health", 8081, "http", "health")
PORTS: Final = (HTTP, GRPC, METRICS, HEALTH)

LIVENESS_PATH: Final = "/healthz"
READINESS_PATH: Final = "/readyz"
METRICS_PATH: Final = "/metrics"

# Labels: Kubernetes recommended labels plus our own.
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_AGENT_TYPE: Final = f"{GROUP}/agent-type"
APP_NAME: Final = "aiagent"
PART_OF: Final = "agentfleet"
MANAGED_BY: Final = "agentfleet-operator"

# On every child: a digest of what we last applied, so an unchanged agent costs no write.
ANNOTATION_APPLIED_HASH: Final = f"{GROUP}/applied-hash"
# On an existing object that has the child's name: "true" lets the operator adopt it. Without
# it, an object we did not create is never touched (the agent reports ChildConflict instead).
ANNOTATION_ADOPT: Final = f"{GROUP}/adopt"
# On an AIAgent applied through the gRPC control API: the revision that was applied (the compute
# agent's revision_id), so applying the same revision again writes nothing. The API's writes
# carry their own field manager, apart from the operator's.
ANNOTATION_WORKLOAD_REVISION: Final = f"{GROUP}/workload-revision"
API_FIELD_MANAGER: Final = "agentfleet-api"

# GPU resources and node labels (NVIDIA GPU Feature Discovery, AMD node labeller).
GPU_RESOURCE: Final = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}
NVIDIA_LABEL_PRODUCT: Final = "nvidia.com/gpu.product"
NVIDIA_LABEL_MEMORY_MIB: Final = "nvidia.com/gpu.memory"
NVIDIA_LABEL_COUNT: Final = "nvidia.com/gpu.count"
NVIDIA_LABEL_SHARING: Final = "nvidia.com/gpu.sharing-strategy"
TIME_SLICING: Final = "time-slicing"
SHARED_STRATEGIES: Final = (TIME_SLICING, "mps")

# Conditions (metav1.Condition) and their reasons.
COND_READY: Final = "Ready"
COND_RECONCILING: Final = "Reconciling"
COND_STALLED: Final = "Stalled"
COND_SCALER_READY: Final = "ScalerReady"
COND_MESH_READY: Final = "MeshReady"
COND_MULTICLUSTER_READY: Final = "MultiClusterReady"
COND_PLACED: Final = "Placed"

# GPU agents' pods: a label the operator's Pod watch selects on, and the scheduling gate
# that holds each one until the placement ledger has chosen its node and GPUs.
LABEL_GPU: Final = f"{GROUP}/gpu"
SCHEDULING_GATE: Final = f"{GROUP}/placement"


class Reason:
    AVAILABLE: Final = "Available"
    PROGRESSING: Final = "Progressing"
    SCALED_TO_ZERO: Final = "ScaledToZero"
    INVALID_SPEC: Final = "InvalidSpec"
    APPLY_FAILED: Final = "ApplyFailed"
    PROGRESS_DEADLINE_EXCEEDED: Final = "ProgressDeadlineExceeded"
    RECONCILED: Final = "Reconciled"
    DISABLED: Final = "Disabled"
    # The API server refused a write for a reason the cluster can lift without a spec change.
    QUOTA_EXCEEDED: Final = "QuotaExceeded"
    FORBIDDEN: Final = "Forbidden"
    # Transient API trouble (409, 429, 5xx, timeouts): retried with backoff.
    RETRYING: Final = "Retrying"
    # An object with a child's name exists and is not controlled by this AIAgent.
    CHILD_CONFLICT: Final = "ChildConflict"
    # The spec asks for something the operator's policy refuses (hostPath, privileged ...).
    POLICY_VIOLATION: Final = "PolicyViolation"
    # An optional feature's CRD (KEDA, Istio, Gateway API) is not served by the API server.
    CRD_NOT_INSTALLED: Final = "CRDNotInstalled"
    APPLIED: Final = "Applied"
    # Seen, and waiting for a worker while a burst of agents keeps them busy.
    QUEUED: Final = "Queued"
    # A ScaledObject KEDA has not reported on yet (KEDA's own reasons are mirrored otherwise).
    WAITING_FOR_KEDA: Final = "WaitingForKEDA"
    # Not decided yet: the operator has not observed the agent, or not placed all replicas.
    PENDING: Final = "Pending"
    # Placed=True, or Placed=False because no node can take a GPU agent's replica.
    PLACED: Final = "Placed"
    INSUFFICIENT_GPU: Final = "InsufficientGPU"
    INSUFFICIENT_VRAM: Final = "InsufficientVRAM"
    INSUFFICIENT_CPU: Final = "InsufficientCPU"
    INSUFFICIENT_MEMORY: Final = "InsufficientMemory"


# Placed=False for one of these: only a person (or new capacity) can help, so waiting ends.
PLACEMENT_FAILURES: Final = frozenset(
    {
        Reason.INSUFFICIENT_GPU,
        Reason.INSUFFICIENT_VRAM,
        Reason.INSUFFICIENT_CPU,
        Reason.INSUFFICIENT_MEMORY,
    }
)


# Istio (ambient and sidecar) and Gateway API: labels the mesh reads, and the names of the
# objects an agent shares with the other mesh agents of its namespace. The shared policy has
# a dot in its name, which no AIAgent name can have, so it never clashes with an agent's own.
LABEL_ISTIO_DATAPLANE_MODE: Final = "istio.io/dataplane-mode"
LABEL_ISTIO_SIDECAR_INJECT: Final = "sidecar.istio.io/inject"
LABEL_ISTIO_USE_WAYPOINT: Final = "istio.io/use-waypoint"
LABEL_ISTIO_WAYPOINT_FOR: Final = "istio.io/waypoint-for"
WAYPOINT_GATEWAY_CLASS: Final = "istio-waypoint"
NAMESPACE_WAYPOINT: Final = "waypoint"  # `istioctl waypoint apply`'s default name
NAMESPACE_DEFAULT_DENY: Final = "agentfleet.default-deny"
# Ambient multi-cluster: a Service (or waypoint Service) with this label is discovered by the
# other clusters of the mesh (the ambient profile's meshConfig.serviceScopeConfigs).
LABEL_ISTIO_GLOBAL: Final = "istio.io/global"
# Proxyless gRPC: the injection template that adds an istio-agent without Envoy and points
# the app's gRPC library at its xDS bootstrap, and the proxy config that holds the app until
# that agent is ready.
ANNOTATION_ISTIO_INJECT_TEMPLATES: Final = "inject.istio.io/templates"
ANNOTATION_ISTIO_PROXY_CONFIG: Final = "proxy.istio.io/config"
GRPC_AGENT_TEMPLATE: Final = "grpc-agent"
# On a proxyless pod that serves mTLS (xDS credentials): callers' proxies then send mTLS.
LABEL_ISTIO_TLS_MODE: Final = "security.istio.io/tlsMode"
GRPC_XDS_BOOTSTRAP: Final = "/etc/istio/proxy/grpc-bootstrap.json"
