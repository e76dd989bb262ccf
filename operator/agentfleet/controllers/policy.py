"""What an agent may ask for, beyond what the CRD schema can say.

The boundary: whoever may create AIAgents in namespace N gets nothing they could not get by
creating a Deployment in N under Pod Security "restricted", and can disturb nothing outside
the agents of N. So an agent is refused (each field named) when
- its pod template fails the installation's Pod Security level (podsecurity.py: the checks of
  the apiserver's own Pod Security admission, as an allow-list);
- it sets a container runtime's device variable (NVIDIA_VISIBLE_DEVICES ...) that would reach
  GPUs past the VRAM ledger and the device plugin;
- it runs as an identity that is not its own or one its namespace's owner marked for agents,
  or as the identity of agentfleet's own components or of a mesh waypoint;
- it lives in kube-system (and the other system namespaces) or in the operator's namespace;
- its autoscaling borrows credentials (a ClusterTriggerAuthentication) or reaches a metrics
  source the installation did not choose (a free-form KEDA scaler).
The installation loosens any of it with `agentfleet run` flags (api/config.py, `Policy`). A
refused agent changes nothing in the cluster and reports `Stalled=True`, reason
PolicyViolation, naming each field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agentfleet.api import constants as c
from agentfleet.api.config import Policy
from agentfleet.api.models import AIAgent
from agentfleet.controllers import podsecurity
from agentfleet.render import deployment, gpu
from agentfleet.render.common import own_identity

# Variables the container runtimes read to decide which GPUs a container gets, beside the
# device plugin's allocation: the NVIDIA Container Toolkit's (NVIDIA_VISIBLE_DEVICES and
# friends, and every NVIDIA_REQUIRE_*) and the AMD Container Toolkit's AMD_VISIBLE_DEVICES.
# CUDA_VISIBLE_DEVICES, HIP_VISIBLE_DEVICES and ROCR_VISIBLE_DEVICES only choose among the
# devices already in the container, so they reach nothing and stay allowed.
DEVICE_ENV = frozenset(
    {
        "NVIDIA_VISIBLE_DEVICES",
        "NVIDIA_DRIVER_CAPABILITIES",
        "NVIDIA_MIG_CONFIG_DEVICES",
        "NVIDIA_MIG_MONITOR_DEVICES",
        "NVIDIA_IMEX_CHANNELS",
        "NVIDIA_GDS",
        "NVIDIA_GDRCOPY",
        "NVIDIA_MOFED",
        "NVIDIA_NVSWITCH",
        "NVIDIA_DISABLE_REQUIRE",
        "AMD_VISIBLE_DEVICES",
    }
)
DEVICE_ENV_PREFIXES = ("NVIDIA_REQUIRE_",)

# Pod spec paths of the agent's pod template -> the spec field that sets them.
_SPEC_FIELDS = (
    ("containers[0].securityContext", "spec.securityContext"),
    ("containers[0].livenessProbe", "spec.probes.liveness"),
    ("containers[0].readinessProbe", "spec.probes.readiness"),
    ("containers[0].startupProbe", "spec.probes.startup"),
    ("securityContext", "spec.podSecurityContext"),
    ("volumes", "spec.volumes"),
)
_MOST = 8  # violations named in one message; the rest are counted


@dataclass(frozen=True)
class Violation:
    """One refused field, and the `agentfleet run` flag that would allow it (None: no
    installation may)."""

    text: str
    remedy: str | None


# (namespace, name) -> is that ServiceAccount marked for agents (c.LABEL_AGENT_IDENTITY)?
Marked = Callable[[str, str], bool]


def violations(
    agent: AIAgent,
    policy: Policy,
    marked: Marked | None = None,
) -> list[Violation]:
    """Everything refused; empty when the agent is allowed."""
    return [
        *_namespace(agent, policy),
        *pod_security(agent, policy),
        *_device_env(agent, policy),
        *_identity(agent, policy, marked or (lambda namespace, name: False)),
        *_autoscaling(agent, policy),
    ]


def message(found: list[Violation]) -> str:
    shown = "; ".join(v.text for v in found[:_MOST])
    more = f" (and {len(found) - _MOST} more)" if len(found) > _MOST else ""
    remedies = " / ".join(dict.fromkeys(v.remedy for v in found if v.remedy))
    allow = f" (an installation can allow this with {remedies})" if remedies else ""
    return f"refused by the operator's policy: {shown}{more}{allow}"


def _namespace(agent: AIAgent, policy: Policy) -> list[Violation]:
    namespace = agent.metadata.namespace
    if namespace in c.SYSTEM_NAMESPACES and not policy.allow_agents_in_system_namespaces:
        return [
            Violation(
                f"metadata.namespace: no agents in {namespace}, a namespace of the cluster's"
                " own components",
                "--allow-agents-in-system-namespaces",
            )
        ]
    if namespace == policy.operator_namespace and not policy.allow_agents_in_operator_namespace:
        return [
            Violation(
                f"metadata.namespace: no agents in {namespace}, the operator's own namespace",
                "--allow-agents-in-operator-namespace",
            )
        ]
    return []


def pod_security(agent: AIAgent, policy: Policy) -> list[Violation]:
    """The agent's pod template, judged as Pod Security admission would judge its pods."""
    pod = deployment.pod_security_view(agent)
    found = podsecurity.refused(pod, policy.pod_security, policy.exceptions)
    return [
        Violation(
            f"{_spec_field(finding.field, pod)} {finding.problem}"
            f" (Pod Security {finding.level}: {finding.check})",
            "--pod-security-exception=<check> or --pod-security=baseline|privileged",
        )
        for finding in found
    ]


def _spec_field(field: str, pod: dict[str, object]) -> str:
    for prefix, spec_field in _SPEC_FIELDS:
        if field == prefix or field.startswith((prefix + ".", prefix + "[")):
            named = spec_field + field[len(prefix) :]
            if prefix == "volumes":  # volumes[2] -> spec.volumes[2] (its name)
                index = int(field[len("volumes[") : field.index("]")])
                volumes = pod.get("volumes")
                if isinstance(volumes, list) and index < len(volumes):
                    named += f" ({volumes[index].get('name')})"
            return named
    return f"the pod template's {field}"


def device_variable(name: str) -> bool:
    return name in DEVICE_ENV or name.startswith(DEVICE_ENV_PREFIXES)


def _device_env(agent: AIAgent, policy: Policy) -> list[Violation]:
    if policy.allow_gpu_visibility_env:
        return []
    remedy = "--allow-gpu-visibility-env"
    found = [
        Violation(
            f"spec.env[{index}] sets {var.name}, which would choose GPUs past the VRAM ledger"
            " and the device plugin (ask for GPUs with spec.gpu)",
            remedy,
        )
        for index, var in enumerate(agent.spec.env or [])
        if device_variable(var.name)
    ]
    if gpu.wants_gpu(agent.spec.gpu):
        # The device plugin sets NVIDIA_VISIBLE_DEVICES for a GPU agent's container and the
        # container's own variables come after it: an envFrom without a prefix could carry
        # another value. (An agent without GPUs gets NVIDIA_VISIBLE_DEVICES=void, which
        # envFrom cannot override.)
        for index, source in enumerate(agent.spec.env_from or []):
            if _could_spell_device_variable(source.prefix or ""):
                found.append(
                    Violation(
                        f"spec.envFrom[{index}] has "
                        + (f"the prefix {source.prefix!r}" if source.prefix else "no prefix")
                        + ", so on a GPU agent it could set NVIDIA_VISIBLE_DEVICES or another"
                        " device variable; give it a prefix such as 'APP_'",
                        remedy,
                    )
                )
    return found


def _could_spell_device_variable(prefix: str) -> bool:
    names = [*DEVICE_ENV, *DEVICE_ENV_PREFIXES]
    return any(name.startswith(prefix) for name in names) or prefix.startswith(DEVICE_ENV_PREFIXES)


def waypoint_identity(name: str) -> bool:
    """The ServiceAccount istiod gives a waypoint is named after its Gateway: the namespace's
    `waypoint` or an agent's `<agent>-waypoint` (render/istio.py). Agents' own policies admit
    that identity, so no agent may run as it."""
    return name == c.NAMESPACE_WAYPOINT or name.endswith("-waypoint")


def _identity(agent: AIAgent, policy: Policy, marked: Marked) -> list[Violation]:
    namespace, name = agent.metadata.namespace, agent.metadata.name
    chosen = agent.spec.service_account_name or ""
    field = f"spec.serviceAccountName {chosen!r}"
    if own_identity(agent):
        # Its own ServiceAccount is named after it: some names are other identities'.
        if waypoint_identity(name):
            return [
                Violation(
                    f"metadata.name: an agent named {name!r} would run as the ServiceAccount"
                    f" {name!r}, which is a mesh waypoint's identity; rename the agent",
                    None,
                )
            ]
        if namespace == policy.operator_namespace and name in policy.protected_service_accounts:
            return [
                Violation(
                    f"metadata.name: an agent named {name!r} would run as the identity of one"
                    " of agentfleet's own components; rename the agent",
                    None,
                )
            ]
        return []
    if namespace == policy.operator_namespace and chosen in policy.protected_service_accounts:
        return [
            Violation(
                f"{field} is the identity of one of agentfleet's own components",
                None,
            )
        ]
    if waypoint_identity(chosen):
        return [
            Violation(
                f"{field} is a mesh waypoint's identity (agents' policies admit it)",
                None,
            )
        ]
    if policy.service_accounts == "own":
        return [
            Violation(
                f"{field}: agents run as the ServiceAccount the operator creates for each",
                "--service-accounts=marked|any",
            )
        ]
    if policy.service_accounts == "marked" and not marked(namespace, chosen):
        return [
            Violation(
                f"{field} is not marked for agents: the namespace's owner must label that"
                f" ServiceAccount {c.LABEL_AGENT_IDENTITY}=true",
                "--service-accounts=any",
            )
        ]
    return []


def _autoscaling(agent: AIAgent, policy: Policy) -> list[Violation]:
    scaling = agent.spec.autoscaling
    if scaling is None or not scaling.enabled:
        return []
    allowed = set(policy.allowed_scalers)
    found = []
    for index, trigger in enumerate(scaling.triggers or []):
        scaler = trigger.scaler
        if scaler is None:
            continue
        where = f"spec.autoscaling.triggers[{index}].scaler"
        if "*" not in allowed and scaler.type not in allowed:
            found.append(
                Violation(
                    f"{where}: KEDA scaler {scaler.type!r} is not allowed here (free-form"
                    " scalers reach metrics and credentials the installation did not choose;"
                    " use requestsPerSecond, queueDepth, cpu or memory)",
                    f"--allow-scaler={scaler.type}",
                )
            )
        ref = scaler.authentication_ref
        if (
            ref is not None
            and ref.kind == "ClusterTriggerAuthentication"
            and not policy.allow_cluster_trigger_authentication
        ):
            found.append(
                Violation(
                    f"{where}.authenticationRef: ClusterTriggerAuthentication {ref.name!r}"
                    " holds credentials shared across namespaces; use a TriggerAuthentication"
                    " of the agent's namespace",
                    "--allow-cluster-trigger-authentication",
                )
            )
    return found
