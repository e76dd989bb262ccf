"""Run a container of a rendered pod template the way the kubelet would, under podman.

Everything comes from the manifest: command and args (with the kubelet's `$(VAR)` expansion),
env (values, the downward API, ConfigMap and Secret keys), volumes (emptyDir, configMap,
secret, projected, downwardAPI), the ServiceAccount token the kubelet mounts, the security
context (user, read-only root, capabilities, no privilege escalation), ports and probes. What
the kubelet would take from a scheduled Pod (its name, uid, node) comes from `PodFacts`. A volume
or env source this module does not know fails loudly, naming it, so a chart change that needs
more support is noticed rather than skipped.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING
from pathlib import Path
from typing import Any

from agentfleet.api import quantity
from tests.image.podman import HOST_LOOPBACK, NETWORK, ULIMITS

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# The in-cluster name of the API server; its serving certificate names it.
API_SERVER_NAME = "kubernetes.default.svc"

# (namespace, kind, name) -> the object, or None when it does not exist.
Lookup = Callable[[str, str, str], dict[str, Any] | None]
# (service account, namespace, audience or "", seconds) -> a token the kubelet would mount.
TokenMaker = Callable[[str, str, str, int], str]


@dataclass(frozen=True)
class PodFacts:
    """What a scheduled Pod would know about itself (the downward API's sources)."""

    name: str
    namespace: str
    uid: str
    node_name: str
    service_account: str
    labels: dict[str, str]
    annotations: dict[str, str]
    pod_ip: str = "10.0.2.100"  # slirp4netns's address of the container
    host_ip: str = "127.0.0.1"
    node_allocatable: dict[str, str] = field(default_factory=dict)


def pod_templates(objects: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, pod template) for every object that starts Pods, whatever its kind."""
    found = []
    for obj in objects:
        spec = obj.get("spec") or {}
        template = spec.get("template") or (spec.get("jobTemplate") or {}).get("spec", {}).get(
            "template"
        )
        if obj.get("kind") == "Pod":
            template = {"metadata": obj.get("metadata", {}), "spec": spec}
        if template and (template.get("spec") or {}).get("containers"):
            found.append((obj, template))
    return found


# --- the kubelet's expansion and the downward API --------------------------------------------


def expand(text: str, env: dict[str, str]) -> str:
    """`$(NAME)` becomes the value of an env var defined before it; `$$` is a literal `$`;
    a reference to an undefined variable stays as written (Kubernetes' own rules)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            if text[i + 1] == "$":
                out.append("$")
                i += 2
                continue
            if text[i + 1] == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2 : end]
                    out.append(env.get(name, text[i : end + 1]))
                    i = end + 1
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)


def field_value(path: str, pod: PodFacts) -> str:
    simple = {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "metadata.uid": pod.uid,
        "spec.nodeName": pod.node_name,
        "spec.serviceAccountName": pod.service_account,
        "status.podIP": pod.pod_ip,
        "status.podIPs": pod.pod_ip,
        "status.hostIP": pod.host_ip,
        "status.hostIPs": pod.host_ip,
    }
    if path in simple:
        return simple[path]
    keyed = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if keyed:
        source = pod.labels if keyed.group(1) == "labels" else pod.annotations
        return source.get(keyed.group(2), "")
    if path in ("metadata.labels", "metadata.annotations"):
        source = pod.labels if path == "metadata.labels" else pod.annotations
        return "\n".join(f'{k}="{v}"' for k, v in sorted(source.items()))
    raise AssertionError(f"the test cannot resolve the downward API field {path!r}: add it")


def resource_value(ref: dict[str, Any], container: dict[str, Any], pod: PodFacts) -> str:
    """limits.cpu, requests.memory, ...: a limit that is not set is the node's allocatable."""
    kind, _, name = ref["resource"].partition(".")
    resources = container.get("resources") or {}
    value = (resources.get(kind) or {}).get(name)
    if value is None and kind == "limits":
        value = pod.node_allocatable.get(name)
    if value is None:
        value = "0"
    divisor = quantity.parse(str(ref.get("divisor") or "1"))
    amount = (quantity.parse(str(value)) / divisor).to_integral_value(rounding=ROUND_CEILING)
    return str(int(amount))


# --- ConfigMaps and Secrets --------------------------------------------------------------------


def object_data(obj: dict[str, Any]) -> dict[str, bytes]:
    """The keys of a ConfigMap or Secret as bytes (Secrets' data is base64)."""
    if obj["kind"] == "Secret":
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        data.update({k: v.encode() for k, v in (obj.get("stringData") or {}).items()})
        return data
    data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def referenced(
    lookup: Lookup, namespace: str, kind: str, name: str, optional: bool
) -> dict[str, bytes] | None:
    obj = lookup(namespace, kind, name)
    if obj is None:
        assert optional, f"{kind} {namespace}/{name} is neither rendered nor in the cluster"
        return None
    return object_data(obj)


def container_env(container: dict[str, Any], pod: PodFacts, lookup: Lookup) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in source:
                ref = source[key]
                data = referenced(
                    lookup, pod.namespace, kind, ref["name"], ref.get("optional", False)
                )
                env.update({prefix + k: v.decode() for k, v in (data or {}).items()})
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(str(var.get("value", "")), env)
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            env[name] = field_value(source["fieldRef"]["fieldPath"], pod)
        elif "resourceFieldRef" in source:
            env[name] = resource_value(source["resourceFieldRef"], container, pod)
        elif "configMapKeyRef" in source or "secretKeyRef" in source:
            kind, ref = (
                ("ConfigMap", source["configMapKeyRef"])
                if "configMapKeyRef" in source
                else ("Secret", source["secretKeyRef"])
            )
            optional = ref.get("optional", False)
            data = referenced(lookup, pod.namespace, kind, ref["name"], optional) or {}
            if ref["key"] in data:
                env[name] = data[ref["key"]].decode()
            else:
                assert optional, f"{kind} {ref['name']} has no key {ref['key']} (env {name})"
        else:
            raise AssertionError(f"the test cannot resolve env {name} from {source}: add it")
    return env


# --- volumes -------------------------------------------------------------------------------


def write_files(directory: Path, files: dict[str, bytes], mode: int = 0o644) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    for relative, content in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    return directory


def projected_items(data: dict[str, bytes], items: list[dict[str, Any]] | None) -> dict[str, bytes]:
    if not items:
        return data
    return {item["path"]: data[item["key"]] for item in items if item["key"] in data}


def downward_files(
    items: list[dict[str, Any]], container: dict[str, Any], pod: PodFacts
) -> dict[str, bytes]:
    files = {}
    for item in items:
        if "fieldRef" in item:
            files[item["path"]] = field_value(item["fieldRef"]["fieldPath"], pod).encode()
        else:
            files[item["path"]] = resource_value(item["resourceFieldRef"], container, pod).encode()
    return files


@dataclass
class Context:
    """Where a pod's files go and how its references are resolved."""

    pod: PodFacts
    lookup: Lookup
    token: TokenMaker
    ca: bytes
    directory: Path


def volume_files(volume: dict[str, Any], container: dict[str, Any], ctx: Context) -> Path:
    """The host directory the kubelet would have made for this volume."""
    target = ctx.directory / "volumes" / volume["name"]
    ns = ctx.pod.namespace
    if "emptyDir" in volume:
        target.mkdir(parents=True, exist_ok=True)
        target.chmod(0o1777)  # the kubelet's emptyDir is world-writable
        return target
    if "configMap" in volume or "secret" in volume:
        kind, source = (
            ("ConfigMap", volume["configMap"])
            if "configMap" in volume
            else ("Secret", volume["secret"])
        )
        name = source.get("name") or source.get("secretName")
        data = referenced(ctx.lookup, ns, kind, name, source.get("optional", False)) or {}
        return write_files(target, projected_items(data, source.get("items")))
    if "downwardAPI" in volume:
        return write_files(
            target, downward_files(volume["downwardAPI"]["items"], container, ctx.pod)
        )
    if "projected" in volume:
        files: dict[str, bytes] = {}
        for source in volume["projected"]["sources"]:
            if "serviceAccountToken" in source:
                token = source["serviceAccountToken"]
                seconds = int(token.get("expirationSeconds", 3607))
                value = ctx.token(ctx.pod.service_account, ns, token.get("audience", ""), seconds)
                files[token["path"]] = value.encode()
            elif "configMap" in source or "secret" in source:
                kind = "ConfigMap" if "configMap" in source else "Secret"
                ref = source["configMap" if kind == "ConfigMap" else "secret"]
                data = referenced(ctx.lookup, ns, kind, ref["name"], ref.get("optional", False))
                files.update(projected_items(data or {}, ref.get("items")))
            elif "downwardAPI" in source:
                files.update(downward_files(source["downwardAPI"]["items"], container, ctx.pod))
            else:
                raise AssertionError(f"projected source {source} is not known to the test: add it")
        return write_files(target, files)
    raise AssertionError(
        f"volume {volume['name']} ({sorted(set(volume) - {'name'})}) is not known to the test;"
        " Pod Security 'restricted' allows configMap, csi, downwardAPI, emptyDir, ephemeral,"
        " persistentVolumeClaim, projected and secret"
    )


def service_account_files(ctx: Context) -> Path:
    """What the kubelet mounts unless automountServiceAccountToken is false."""
    token = ctx.token(ctx.pod.service_account, ctx.pod.namespace, "", 3607)
    files = {"token": token.encode(), "ca.crt": ctx.ca, "namespace": ctx.pod.namespace.encode()}
    return write_files(ctx.directory / "serviceaccount", files)


# --- the podman command line ------------------------------------------------------------------


@dataclass
class Run:
    """One container, ready for `podman run`, and what the test needs to probe it."""

    name: str
    argv: list[str]  # the podman arguments after `run`
    env: dict[str, str]
    command: list[str]  # what runs: entrypoint + arguments, expanded (for messages)
    ports: dict[str, int]  # container port (number or name) -> host port on 127.0.0.1
    probes: dict[str, dict[str, Any]]  # startup/liveness/readiness -> probe
    user: int | None


def run_of(
    pod_spec: dict[str, Any],
    container: dict[str, Any],
    ctx: Context,
    image: str,
    image_config: dict[str, Any],
    api_server_port: int,
    free_port: Callable[[], int],
    name: str,
) -> Run:
    pod = ctx.pod
    env = {
        # The kubelet sets these in every container, whatever enableServiceLinks says.
        "KUBERNETES_SERVICE_HOST": API_SERVER_NAME,
        "KUBERNETES_SERVICE_PORT": str(api_server_port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(api_server_port),
        **container_env(container, pod, ctx.lookup),
    }
    argv = [
        "--detach", "--name", name, "--hostname", pod.name,
        "--network", NETWORK, "--add-host", f"{API_SERVER_NAME}:{HOST_LOOPBACK}", *ULIMITS,
    ]  # fmt: skip
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    if container.get("workingDir"):
        argv += ["--workdir", container["workingDir"]]

    # Security context: the container's over the pod's.
    pod_sc = pod_spec.get("securityContext") or {}
    sc = {**pod_sc, **(container.get("securityContext") or {})}
    user = sc.get("runAsUser")
    image_user = str(image_config.get("config", {}).get("User") or "0").split(":")[0]
    effective = int(user) if user is not None else int(image_user) if image_user.isdigit() else None
    if sc.get("runAsNonRoot"):
        assert effective not in (None, 0), f"{name}: runAsNonRoot, but it would run as {effective}"
    if user is not None:
        argv += ["--user", f"{user}:{sc['runAsGroup']}" if "runAsGroup" in sc else str(user)]
    for group in [*(pod_sc.get("supplementalGroups") or []), pod_sc.get("fsGroup")]:
        if group is not None:
            argv += ["--group-add", str(group)]
    if sc.get("readOnlyRootFilesystem"):
        argv += ["--read-only", "--read-only-tmpfs=false"]
    capabilities = sc.get("capabilities") or {}
    for cap in capabilities.get("drop") or []:
        argv += ["--cap-drop", cap.lower()]
    for cap in capabilities.get("add") or []:
        argv += ["--cap-add", cap.lower()]
    if sc.get("allowPrivilegeEscalation") is False:
        argv += ["--security-opt", "no-new-privileges"]
    if sc.get("privileged"):
        argv += ["--privileged"]

    # Volumes, and the ServiceAccount token unless the pod opts out.
    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    mounted: set[str] = set()
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        assert volume is not None, f"{name}: volumeMount {mount['name']} names no volume"
        source = volume_files(volume, container, ctx)
        if mount.get("subPath"):
            source = source / mount["subPath"]
        options = (
            "ro"
            if mount.get("readOnly")
            or not ("emptyDir" in volume or "persistentVolumeClaim" in volume)
            else "rw"
        )
        argv += ["--volume", f"{source}:{mount['mountPath']}:{options}"]
        mounted.add(mount["mountPath"])
    if pod_spec.get("automountServiceAccountToken", True) and SERVICE_ACCOUNT_DIR not in mounted:
        argv += ["--volume", f"{service_account_files(ctx)}:{SERVICE_ACCOUNT_DIR}:ro"]

    # Ports: each in the container's own network namespace, published on the host's loopback.
    probes = {
        kind: container[f"{kind}Probe"]
        for kind in ("startup", "liveness", "readiness")
        if container.get(f"{kind}Probe")
    }
    ports: dict[str, int] = {}
    named = {p["name"]: p["containerPort"] for p in container.get("ports") or [] if "name" in p}
    numbers = [p["containerPort"] for p in container.get("ports") or []]
    for probe in probes.values():
        for handler in ("httpGet", "tcpSocket", "grpc"):
            port = (probe.get(handler) or {}).get("port")
            if isinstance(port, int):
                numbers.append(port)
    for number in dict.fromkeys(numbers):
        ports[str(number)] = free_port()
        argv += ["--publish", f"127.0.0.1:{ports[str(number)]}:{number}"]
    for port_name, number in named.items():
        ports[port_name] = ports[str(number)]

    # Kubernetes: `command` replaces the image's ENTRYPOINT, `args` its CMD; a command
    # without args runs without the image's CMD.
    entrypoint = [expand(part, env) for part in container.get("command") or []]
    args = [expand(part, env) for part in container.get("args") or []]
    image_entrypoint = image_config.get("config", {}).get("Entrypoint") or []
    image_cmd = image_config.get("config", {}).get("Cmd") or []
    if entrypoint:
        argv += ["--entrypoint", json.dumps(entrypoint)]
        command = entrypoint + args
    else:
        command = image_entrypoint + (args if "args" in container else image_cmd)
    argv += [image, *args] if (args or entrypoint) else [image]
    return Run(name, argv, env, command, ports, probes, effective)


def describe(run: Run) -> str:
    return shlex.join(run.command)


# --- probes ---------------------------------------------------------------------------------


def probe_passes(run: Run, probe: dict[str, Any], timeout: float = 3) -> bool:
    """One try of an httpGet, tcpSocket or grpc probe, as the kubelet would (no TLS checks)."""
    if "httpGet" in probe:
        get = probe["httpGet"]
        scheme = str(get.get("scheme", "HTTP")).lower()
        url = f"{scheme}://127.0.0.1:{run.ports[str(get['port'])]}{get.get('path', '/')}"
        request = urllib.request.Request(url)
        for header in get.get("httpHeaders") or []:
            request.add_header(header["name"], header["value"])
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=insecure) as response:
                return 200 <= int(response.status) < 400
        except (urllib.error.URLError, OSError):
            return False
    if "tcpSocket" in probe or "grpc" in probe:
        handler = probe.get("tcpSocket") or probe["grpc"]
        port = run.ports[str(handler["port"])]
        if "grpc" in probe:
            return grpc_serving(port, str(probe["grpc"].get("service", "")), timeout)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout):
                return True
        except OSError:
            return False
    raise AssertionError(f"{run.name}: the test cannot run the probe {probe}: add it")


def grpc_serving(port: int, service: str, timeout: float) -> bool:
    """The gRPC health protocol, as the kubelet's grpc probe speaks it."""
    import grpc  # type: ignore[import-untyped]
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)
