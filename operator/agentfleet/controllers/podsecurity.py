"""The Pod Security Standards, as the apiserver's Pod Security admission judges a pod.

Whoever may create an AIAgent gets pods the operator makes. They must get nothing they could
not get by creating those pods themselves under Pod Security "restricted", so the operator
judges every agent's pod template against the same checks, by the same ids, that Pod Security
admission runs (k8s.io/pod-security-admission/policy, v1.35), and refuses what fails instead of
leaving a Deployment whose pods the cluster refuses. It is an allow-list where the standard is
one (volume types, capabilities, seccomp, sysctls, SELinux types): anything not named as
allowed fails, so a field Kubernetes adds later is refused until this module knows it.

Pure: a pod spec in (the dict the Deployment's template carries), findings out. Each finding
names the field and the check; the level (baseline or restricted) it belongs to and the
installation's exceptions decide what is refused (controllers/policy.py). Where a restricted
check covers more than a baseline one (hostPath among the non-allowed volume types, a
capability outside the default set), the part the baseline check also refuses is reported
under the baseline check's id, so one exception allows exactly one thing at every level. The
integration tests hold this module to the apiserver's own verdicts (test_pod_security.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from agentfleet.api import constants as c

RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
RESTRICTED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    }
)
SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
PROFILE_TYPES = frozenset({"RuntimeDefault", "Localhost"})  # seccomp and AppArmor
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_LIFECYCLE = ("postStart", "preStop")


@dataclass(frozen=True)
class Finding:
    """One thing a Pod Security check refuses: `field` is a path in the pod spec
    (`containers[0].securityContext.capabilities.drop`), `problem` what is wrong with it."""

    check: str
    field: str
    problem: str

    @property
    def level(self) -> str:
        return c.POD_SECURITY_CHECKS[self.check]


def refused(pod: dict[str, Any], level: str, exceptions: frozenset[str]) -> list[Finding]:
    """What the pod spec may not have at this level, less the installation's exceptions."""
    if level == "privileged":
        return []
    rank = c.POD_SECURITY_LEVELS.index(level)
    return [
        finding
        for finding in findings(pod)
        if c.POD_SECURITY_LEVELS.index(finding.level) <= rank and finding.check not in exceptions
    ]


def findings(pod: dict[str, Any]) -> list[Finding]:
    """Every finding of every check (both levels), in a stable order."""
    return [
        *_host_namespaces(pod),
        *_volumes(pod),
        *_pod_security_context(pod),
        *(
            found
            for path, container in _containers(pod)
            for found in _container(pod, path, container)
        ),
    ]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _windows(pod: dict[str, Any]) -> bool:
    """Pods for Windows nodes are exempt from the Linux-only restricted checks."""
    return _dict(pod.get("os")).get("name") == "windows"


def _user_namespace(pod: dict[str, Any]) -> bool:
    """`hostUsers: false` relaxes runAsNonRoot, runAsUser and baseline procMount (v1.35)."""
    return pod.get("hostUsers") is False


def _containers(pod: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for index, container in enumerate(_list(pod.get(kind))):
            yield f"{kind}[{index}]", _dict(container)


def _host_namespaces(pod: dict[str, Any]) -> Iterator[Finding]:
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key) is True:
            yield Finding("hostNamespaces", key, "must not be true")


def _volumes(pod: dict[str, Any]) -> Iterator[Finding]:
    for index, volume in enumerate(_list(pod.get("volumes"))):
        sources = sorted(k for k in _dict(volume) if k != "name")
        where = f"volumes[{index}]"
        if "hostPath" in sources:
            yield Finding("hostPathVolumes", where, "is a hostPath volume")
        others = [s for s in sources if s != "hostPath" and s not in RESTRICTED_VOLUME_TYPES]
        if others:
            allowed = ", ".join(sorted(RESTRICTED_VOLUME_TYPES))
            kinds = ", ".join(others)
            yield Finding("restrictedVolumes", where, f"is a {kinds} volume (allowed: {allowed})")


def _pod_security_context(pod: dict[str, Any]) -> Iterator[Finding]:
    context = _dict(pod.get("securityContext"))
    where = "securityContext"
    yield from _profile("appArmorProfile", where, context)
    yield from _selinux(where, context)
    seccomp = context.get("seccompProfile")
    if seccomp is not None and _dict(seccomp).get("type") not in PROFILE_TYPES:
        yield Finding(
            "seccompProfile_baseline",
            f"{where}.seccompProfile.type",
            f"is {_dict(seccomp).get('type')!r}: RuntimeDefault or Localhost only",
        )
    for index, sysctl in enumerate(_list(context.get("sysctls"))):
        name = _dict(sysctl).get("name")
        if name not in SAFE_SYSCTLS:
            yield Finding("sysctls", f"{where}.sysctls[{index}]", f"{name!r} is not a safe sysctl")
    if _dict(context.get("windowsOptions")).get("hostProcess") is True:
        yield Finding("windowsHostProcess", f"{where}.windowsOptions.hostProcess", "is true")
    if context.get("runAsNonRoot") is False and not _user_namespace(pod):
        yield Finding("runAsNonRoot", f"{where}.runAsNonRoot", "is false")
    if _is_zero(context.get("runAsUser")) and not _user_namespace(pod):
        yield Finding("runAsUser", f"{where}.runAsUser", "is 0 (root)")


def _container(pod: dict[str, Any], path: str, container: dict[str, Any]) -> Iterator[Finding]:
    context = _dict(container.get("securityContext"))
    pod_context = _dict(pod.get("securityContext"))
    where = f"{path}.securityContext"
    if context.get("privileged") is True:
        yield Finding("privileged", f"{where}.privileged", "is true")
    yield from _capabilities(pod, where, context)
    for index, port in enumerate(_list(container.get("ports"))):
        if _dict(port).get("hostPort") not in (None, 0):
            yield Finding("hostPorts", f"{path}.ports[{index}].hostPort", "must not be set")
    yield from _profile("appArmorProfile", where, context)
    yield from _selinux(where, context)
    proc_mount = context.get("procMount")
    if proc_mount is not None and proc_mount != "Default":
        check = "procMount_restricted" if _user_namespace(pod) else "procMount"
        yield Finding(check, f"{where}.procMount", f"is {proc_mount!r}: Default only")
    yield from _seccomp(pod, where, context, pod_context)
    if _dict(context.get("windowsOptions")).get("hostProcess") is True:
        yield Finding("windowsHostProcess", f"{where}.windowsOptions.hostProcess", "is true")
    yield from _hosts(path, container)
    if context.get("allowPrivilegeEscalation") is not False and not _windows(pod):
        yield Finding(
            "allowPrivilegeEscalation", f"{where}.allowPrivilegeEscalation", "must be false"
        )
    if not _user_namespace(pod):
        non_root = context.get("runAsNonRoot")
        if non_root is False:
            yield Finding("runAsNonRoot", f"{where}.runAsNonRoot", "is false")
        elif non_root is None and pod_context.get("runAsNonRoot") is not True:
            yield Finding(
                "runAsNonRoot", f"{where}.runAsNonRoot", "must be true (here or for the pod)"
            )
        if _is_zero(context.get("runAsUser")):
            yield Finding("runAsUser", f"{where}.runAsUser", "is 0 (root)")


def _is_zero(value: Any) -> bool:
    return type(value) is int and value == 0


def _capabilities(pod: dict[str, Any], where: str, context: dict[str, Any]) -> Iterator[Finding]:
    capabilities = _dict(context.get("capabilities"))
    for index, capability in enumerate(_list(capabilities.get("add"))):
        field = f"{where}.capabilities.add[{index}]"
        if capability not in BASELINE_CAPABILITIES:
            yield Finding("capabilities_baseline", field, f"{capability!r} is not allowed")
        elif capability not in RESTRICTED_CAPABILITIES and not _windows(pod):
            yield Finding(
                "capabilities_restricted", field, f"{capability!r}: only NET_BIND_SERVICE"
            )
    if "ALL" not in _list(capabilities.get("drop")) and not _windows(pod):
        yield Finding("capabilities_restricted", f"{where}.capabilities.drop", "must include ALL")


def _profile(key: str, where: str, context: dict[str, Any]) -> Iterator[Finding]:
    profile = context.get(key)
    if profile is not None and _dict(profile).get("type") not in PROFILE_TYPES:
        yield Finding(
            key,
            f"{where}.{key}.type",
            f"is {_dict(profile).get('type')!r}: RuntimeDefault or Localhost only",
        )


def _selinux(where: str, context: dict[str, Any]) -> Iterator[Finding]:
    options = context.get("seLinuxOptions")
    if options is None:
        return
    options = _dict(options)
    if options.get("type", "") not in SELINUX_TYPES:
        types = ", ".join(sorted(t for t in SELINUX_TYPES if t))
        yield Finding(
            "seLinuxOptions",
            f"{where}.seLinuxOptions.type",
            f"is {options.get('type')!r} (allowed: {types})",
        )
    for key in ("user", "role"):
        if options.get(key):
            yield Finding("seLinuxOptions", f"{where}.seLinuxOptions.{key}", "must not be set")


def _seccomp(
    pod: dict[str, Any], where: str, context: dict[str, Any], pod_context: dict[str, Any]
) -> Iterator[Finding]:
    seccomp = context.get("seccompProfile")
    if seccomp is not None:
        kind = _dict(seccomp).get("type")
        if kind not in PROFILE_TYPES:
            yield Finding(
                "seccompProfile_baseline",
                f"{where}.seccompProfile.type",
                f"is {kind!r}: RuntimeDefault or Localhost only",
            )
        return
    pod_type = _dict(pod_context.get("seccompProfile")).get("type")
    if pod_type not in PROFILE_TYPES and not _windows(pod):
        yield Finding(
            "seccompProfile_restricted",
            f"{where}.seccompProfile.type",
            "must be RuntimeDefault or Localhost (here or for the pod)",
        )


def _hosts(path: str, container: dict[str, Any]) -> Iterator[Finding]:
    handlers = [(f"{path}.{probe}", container.get(probe)) for probe in _PROBES]
    lifecycle = _dict(container.get("lifecycle"))
    handlers += [(f"{path}.lifecycle.{hook}", lifecycle.get(hook)) for hook in _LIFECYCLE]
    for where, handler in handlers:
        for action in ("httpGet", "tcpSocket"):
            host = _dict(_dict(handler).get(action)).get("host")
            if host:
                yield Finding(
                    "hostProbesAndHostLifecycle", f"{where}.{action}.host", "must not be set"
                )
