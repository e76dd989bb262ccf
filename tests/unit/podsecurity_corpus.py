# ruff: noqa: E501 (a table: one case per line reads best)
"""Agent specs that probe every Pod Security check the CRD's pass-through fields can reach.

Each case is a fragment of an AIAgent spec (merged over a plain agent) and the check ids
the operator should report for it. Every case renders a valid pod (the apiserver's own
validation passes), so the integration test can ask Pod Security admission itself for its
verdict (test_pod_security.py) and hold the operator's verdict to it, at both levels; the
unit test (test_podsecurity.py) holds the operator to the check ids listed here.

Fields the CRD does not pass through (hostNetwork/hostPID/hostIPC, hostPort, lifecycle hooks,
init containers, hostUsers, os, annotations) cannot be set by an agent; the checker's own unit
tests cover them on raw pod specs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Case:
    name: str
    spec: dict[str, Any]
    refused: frozenset[str] = field(default_factory=frozenset)  # check ids at restricted

    def refused_at(self, level: str) -> frozenset[str]:
        from agentfleet.api import constants as c

        if level == "restricted":
            return self.refused
        return frozenset(x for x in self.refused if c.POD_SECURITY_CHECKS[x] == "baseline")


def case(name: str, refused: tuple[str, ...] = (), **spec: Any) -> Case:
    return Case(name, spec, frozenset(refused))


def sc(**context: Any) -> dict[str, Any]:
    return {"securityContext": context}


def pod_sc(**context: Any) -> dict[str, Any]:
    return {"podSecurityContext": context}


def volume(name: str, **source: Any) -> dict[str, Any]:
    return {"volumes": [{"name": name, **source}]}


PROBE = {"httpGet": {"path": "/healthz", "port": 8081}}

CASES: list[Case] = [
    # allowed by restricted
    case("plain"),
    case("gpu", gpu={"count": 1, "vram": "8Gi"}),
    case("net-bind-service", **sc(capabilities={"add": ["NET_BIND_SERVICE"]})),
    case("read-only-root", **sc(readOnlyRootFilesystem=True, runAsUser=1000, runAsGroup=0)),
    case("pod-user", **pod_sc(runAsUser=1000, fsGroup=0, supplementalGroups=[0])),
    case("seccomp-localhost", **sc(seccompProfile={"type": "Localhost", "localhostProfile": "a.json"})),
    case("apparmor-runtime-default", **sc(appArmorProfile={"type": "RuntimeDefault"})),
    case("apparmor-localhost", **pod_sc(appArmorProfile={"type": "Localhost", "localhostProfile": "p"})),
    case("selinux-container-t", **sc(seLinuxOptions={"type": "container_t", "level": "s0:c1,c2"})),
    case("selinux-engine-t", **pod_sc(seLinuxOptions={"type": "container_engine_t"})),
    case("sysctl-safe", **pod_sc(sysctls=[{"name": "net.ipv4.tcp_syncookies", "value": "1"}])),
    case("sysctl-keepalive", **pod_sc(sysctls=[{"name": "net.ipv4.tcp_keepalive_time", "value": "60"}])),
    case("proc-mount-default", **sc(procMount="Default")),
    case("empty-dir", **volume("scratch", emptyDir={})),
    case("config-map", **volume("cfg", configMap={"name": "settings"})),
    case("secret", **volume("creds", secret={"secretName": "creds"})),
    case("projected", **volume("p", projected={"sources": [{"configMap": {"name": "c"}}]})),
    case("downward-api", **volume("d", downwardAPI={"items": [{"path": "podname", "fieldRef": {"fieldPath": "metadata.name"}}]})),
    case("pvc", **volume("data", persistentVolumeClaim={"claimName": "data"})),
    case("csi", **volume("c", csi={"driver": "secrets-store.csi.k8s.io"})),
    case("ephemeral", **volume("e", ephemeral={"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}})),
    case("image-volume", **volume("model", image={"reference": "example.com/model:1", "pullPolicy": "IfNotPresent"})),
    case("probe-no-host", probes={"liveness": PROBE}),
    # baseline refuses
    case("privileged", ("privileged", "allowPrivilegeEscalation"), **sc(privileged=True, allowPrivilegeEscalation=True)),
    case("cap-sys-admin", ("capabilities_baseline",), **sc(capabilities={"add": ["SYS_ADMIN"]})),
    case("cap-net-raw", ("capabilities_baseline",), **sc(capabilities={"add": ["NET_RAW"], "drop": ["ALL"]})),
    case("seccomp-unconfined", ("seccompProfile_baseline",), **sc(seccompProfile={"type": "Unconfined"})),
    case("pod-seccomp-unconfined", ("seccompProfile_baseline",), **pod_sc(seccompProfile={"type": "Unconfined"})),
    case("apparmor-unconfined", ("appArmorProfile",), **sc(appArmorProfile={"type": "Unconfined"})),
    case("pod-apparmor-unconfined", ("appArmorProfile",), **pod_sc(appArmorProfile={"type": "Unconfined"})),
    case("selinux-spc-t", ("seLinuxOptions",), **sc(seLinuxOptions={"type": "spc_t"})),
    case("selinux-user", ("seLinuxOptions",), **pod_sc(seLinuxOptions={"user": "system_u"})),
    case("selinux-role", ("seLinuxOptions",), **sc(seLinuxOptions={"role": "system_r"})),
    case("sysctl-unsafe", ("sysctls",), **pod_sc(sysctls=[{"name": "kernel.msgmax", "value": "65536"}])),
    case("host-path", ("hostPathVolumes",), **volume("root", hostPath={"path": "/"})),
    case("probe-http-host", ("hostProbesAndHostLifecycle",), probes={"readiness": {"httpGet": {"path": "/", "port": 8081, "host": "10.0.0.1"}}}),
    case("probe-tcp-host", ("hostProbesAndHostLifecycle",), probes={"startup": {"tcpSocket": {"port": 22, "host": "169.254.169.254"}}}),
    # restricted refuses (baseline allows)
    case("drop-nothing", ("capabilities_restricted",), **sc(capabilities={"drop": []})),
    case("drop-net-raw-only", ("capabilities_restricted",), **sc(capabilities={"drop": ["NET_RAW"]})),
    case("cap-chown", ("capabilities_restricted",), **sc(capabilities={"add": ["CHOWN"]})),
    case("escalation", ("allowPrivilegeEscalation",), **sc(allowPrivilegeEscalation=True)),
    case("run-as-root", ("runAsNonRoot",), **sc(runAsNonRoot=False)),
    case("pod-run-as-root", ("runAsNonRoot",), **pod_sc(runAsNonRoot=False)),
    case("uid-0", ("runAsUser",), **sc(runAsUser=0)),
    case("pod-uid-0", ("runAsUser",), **pod_sc(runAsUser=0)),
    case("git-repo", ("restrictedVolumes",), **volume("src", gitRepo={"repository": "https://example.com/x.git"})),
    case("nfs", ("restrictedVolumes",), **volume("share", nfs={"server": "10.0.0.2", "path": "/"})),
    case("iscsi", ("restrictedVolumes",), **volume("disk", iscsi={"targetPortal": "10.0.0.3:3260", "iqn": "iqn.2001-04.com.example:storage", "lun": 0})),
    case("fc", ("restrictedVolumes",), **volume("fc", fc={"wwids": ["3600508b400105e210000900000490000"]})),
    # several at once: each is named
    case(
        "everything",
        ("privileged", "capabilities_baseline", "seccompProfile_baseline", "hostPathVolumes",
         "capabilities_restricted", "runAsUser", "allowPrivilegeEscalation"),
        securityContext={"privileged": True, "allowPrivilegeEscalation": True, "capabilities": {"add": ["SYS_ADMIN"], "drop": []}, "seccompProfile": {"type": "Unconfined"}, "runAsUser": 0},
        volumes=[{"name": "root", "hostPath": {"path": "/"}}],
    ),
]  # fmt: skip


def spec_of(case: Case) -> dict[str, Any]:
    """The whole agent spec of a case."""
    return {"agentType": "custom", "image": "example.com/agent:1", **case.spec}
