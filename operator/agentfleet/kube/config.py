"""Where the API server is and who we are, read the way kubectl reads it.

No Kubernetes client library is needed for this: with none installed, kopf logs in through its
own minimal loaders too, and the operator process stays small (kubernetes_asyncio's generated
models alone are about 50 MiB of RSS, and kopf imports them whenever the package exists).

Supported: kubeconfig files (`--kubeconfig`, `$KUBECONFIG` with several files merged the way
kubectl merges them, `~/.kube/config`), with a token, a token file, client certificates (files
or inline data), a CA (file or data), `insecure-skip-tls-verify`, and exec credential plugins
(`client.authentication.k8s.io/v1` and `v1beta1`: EKS, GKE, AKS, OIDC helpers); and a Pod's
ServiceAccount (its token file is re-read, so rotated bound tokens keep working).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import ssl
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_SECONDS = 60.0  # the kubelet rotates bound tokens well before they expire
EXEC_TIMEOUT_SECONDS = 30.0


class ConfigError(Exception):
    """No usable cluster configuration: says which file or setting is at fault."""


@dataclass
class Credentials:
    """A bearer token, from a fixed value, a file (re-read) or an exec plugin (re-run when
    it expires). Client certificates live in the TLS context instead."""

    token: str | None = None
    token_file: Path | None = None
    exec_config: dict[str, Any] | None = None
    config_dir: Path | None = None  # relative exec commands resolve against the kubeconfig's
    _read_at: float = field(default=float("-inf"), repr=False)
    _expires_at: float = field(default=float("-inf"), repr=False)

    async def authorization(self) -> str | None:
        """The Authorization header value, or None when the TLS client certificate is it."""
        now = time.monotonic()
        if self.token_file is not None and now - self._read_at > TOKEN_REREAD_SECONDS:
            self.token = self.token_file.read_text().strip()
            self._read_at = now
        if self.exec_config is not None and (self.token is None or now >= self._expires_at):
            credential = await run_exec_plugin(self.exec_config, self.config_dir)
            status = credential.get("status") or {}
            self.token = status.get("token")
            self._expires_at = _monotonic_deadline(status.get("expirationTimestamp"))
        return f"Bearer {self.token}" if self.token else None


@dataclass
class ClusterConfig:
    """Everything a request needs besides its path."""

    server: str  # https://host:port, no trailing slash
    ssl_context: ssl.SSLContext
    credentials: Credentials
    namespace: str | None = None  # the context's, or the Pod's own
    context: str | None = None  # the kubeconfig context used (None: in-cluster)
    in_cluster: bool = False


async def load(
    kubeconfig: str | None = None,
    context: str | None = None,
    prefer_in_cluster: bool = False,
) -> ClusterConfig:
    """kubectl's order: `kubeconfig`, $KUBECONFIG, ~/.kube/config, else the Pod's
    ServiceAccount. `prefer_in_cluster` (the operator and the node agent) tries the Pod's
    ServiceAccount first unless a kubeconfig or context was named."""
    if prefer_in_cluster and not (kubeconfig or context) and in_cluster_available():
        return load_in_cluster()
    files = kubeconfig_files(kubeconfig)
    if files:
        return await load_kubeconfig(files, context)
    if in_cluster_available():
        return load_in_cluster()
    raise ConfigError(
        "no kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config) and not in a Pod"
    )


def kubeconfig_files(explicit: str | None) -> list[Path]:
    """The files to merge, in kubectl's order; [] when there are none."""
    spec = explicit or os.environ.get("KUBECONFIG")
    if spec:
        files = [Path(p).expanduser() for p in spec.split(os.pathsep) if p]
        existing = [f for f in files if f.exists()]
        if explicit and not existing:
            raise ConfigError(f"{explicit} does not exist")
        if not existing:
            raise ConfigError(f"KUBECONFIG={spec}: none of its files exists")
        return existing
    default = Path.home() / ".kube" / "config"
    return [default] if default.exists() else []


def in_cluster_available() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and (
        SERVICE_ACCOUNT_DIR / "token"
    ).exists()


def in_cluster_server() -> str:
    """The API server as a Pod reaches it: the Service that client-go's in-cluster config
    names by $KUBERNETES_SERVICE_HOST and $KUBERNETES_SERVICE_PORT."""
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return f"https://{host}:{port}"


def in_cluster_namespace() -> str | None:
    namespace_file = SERVICE_ACCOUNT_DIR / "namespace"
    return (namespace_file.read_text().strip() or None) if namespace_file.exists() else None


def load_in_cluster() -> ClusterConfig:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(SERVICE_ACCOUNT_DIR / "ca.crt"))
    return ClusterConfig(
        server=in_cluster_server(),
        ssl_context=context,
        credentials=Credentials(token_file=SERVICE_ACCOUNT_DIR / "token"),
        namespace=in_cluster_namespace(),
        in_cluster=True,
    )


def merge_kubeconfigs(files: list[Path]) -> tuple[dict[str, Any], dict[str, Path]]:
    """kubectl's merge: the first file that sets a map key wins, the first current-context
    wins. Also returns, per cluster/user/context name, the file it came from (relative paths
    in an entry resolve against its own file's folder)."""
    merged: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}}
    origin: dict[str, Path] = {}
    for path in files:
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"cannot read kubeconfig {path}: {error}") from None
        if not isinstance(document, dict):
            raise ConfigError(f"kubeconfig {path} is not a mapping")
        if not merged.get("current-context"):
            merged["current-context"] = document.get("current-context")
        for section, inner in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for entry in document.get(section) or []:
                name = entry.get("name") if isinstance(entry, dict) else None
                if name and name not in merged[section]:
                    merged[section][name] = entry.get(inner) or {}
                    origin[f"{section}/{name}"] = path.parent
    return merged, origin


def list_contexts(kubeconfig: str | None = None) -> tuple[list[str], str | None]:
    """The context names of the merged kubeconfig and the current one."""
    files = kubeconfig_files(kubeconfig)
    if not files:
        return [], None
    merged, _ = merge_kubeconfigs(files)
    return sorted(merged["contexts"]), merged.get("current-context")


async def load_kubeconfig(files: list[Path], context: str | None = None) -> ClusterConfig:
    merged, origin = merge_kubeconfigs(files)
    name = context or merged.get("current-context")
    if not name:
        raise ConfigError("the kubeconfig has no current-context: pass --context")
    ctx = merged["contexts"].get(name)
    if ctx is None:
        raise ConfigError(f'context "{name}" is not in the kubeconfig')
    cluster = merged["clusters"].get(ctx.get("cluster"))
    if cluster is None:
        raise ConfigError(f'context "{name}" names cluster "{ctx.get("cluster")}", not found')
    user = merged["users"].get(ctx.get("user"), {}) if ctx.get("user") else {}
    cluster_dir = origin.get(f"clusters/{ctx.get('cluster')}", files[0].parent)
    user_dir = origin.get(f"users/{ctx.get('user')}", files[0].parent)
    server = str(cluster.get("server") or "").rstrip("/")
    if not server:
        raise ConfigError(f'cluster "{ctx.get("cluster")}" has no server')

    # As client-go: a cluster's CA is then the only root it trusts; without one, the system's.
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca = _pem(cluster, "certificate-authority", cluster_dir)
    if ca is not None:
        tls.load_verify_locations(cadata=ca.decode())
    else:
        tls.load_default_certs()
    if cluster.get("insecure-skip-tls-verify"):
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE

    credentials = Credentials(config_dir=user_dir)
    if user.get("token"):
        credentials.token = str(user["token"])
    elif user.get("tokenFile"):
        credentials.token_file = _resolve(user["tokenFile"], user_dir)
    elif user.get("exec"):
        credentials.exec_config = dict(user["exec"])
    elif user.get("auth-provider"):
        provider = (user["auth-provider"] or {}).get("name")
        raise ConfigError(
            f"the auth-provider {provider!r} of user {ctx.get('user')!r} is not supported"
            " (removed from kubectl too): use an exec credential plugin"
        )
    certificate = _pem(user, "client-certificate", user_dir)
    key = _pem(user, "client-key", user_dir)
    if credentials.exec_config is not None and certificate is None:
        # An exec plugin may hand out a client certificate instead of a token.
        credential = await run_exec_plugin(credentials.exec_config, user_dir)
        status = credential.get("status") or {}
        if status.get("clientCertificateData") and status.get("clientKeyData"):
            certificate = str(status["clientCertificateData"]).encode()
            key = str(status["clientKeyData"]).encode()
            credentials.exec_config = None
        else:
            credentials.token = status.get("token")
            credentials._expires_at = _monotonic_deadline(status.get("expirationTimestamp"))
    if certificate is not None:
        if key is None:
            raise ConfigError(f"user {ctx.get('user')!r} has a client certificate but no key")
        _load_cert_chain(tls, certificate, key)
    return ClusterConfig(
        server=server,
        ssl_context=tls,
        credentials=credentials,
        namespace=ctx.get("namespace") or None,
        context=name,
    )


def _resolve(path: str, base: Path) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else base / candidate


def _pem(entry: Mapping[str, Any], key: str, base: Path) -> bytes | None:
    """`<key>-data` (base64) or the file `<key>` names, as PEM bytes."""
    data = entry.get(f"{key}-data")
    if data:
        try:
            return base64.b64decode(data)
        except ValueError:
            raise ConfigError(f"{key}-data is not base64") from None
    path = entry.get(key)
    if path:
        try:
            return _resolve(str(path), base).read_bytes()
        except OSError as error:
            raise ConfigError(f"cannot read {key} {path}: {error}") from None
    return None


def _load_cert_chain(context: ssl.SSLContext, certificate: bytes, key: bytes) -> None:
    """ssl reads a certificate chain only from files: write both to a private temporary
    folder, load them, and delete them at once."""
    with tempfile.TemporaryDirectory(prefix="agentfleet-tls-") as folder:
        cert_file, key_file = Path(folder) / "tls.crt", Path(folder) / "tls.key"
        for path, content in ((cert_file, certificate), (key_file, key)):
            path.touch(mode=0o600)
            path.write_bytes(content)
        try:
            context.load_cert_chain(str(cert_file), str(key_file))
        except ssl.SSLError as error:
            raise ConfigError(f"the client certificate or key is not usable: {error}") from None


async def run_exec_plugin(exec_config: Mapping[str, Any], base: Path | None) -> dict[str, Any]:
    """Run a client-go credential plugin and return its ExecCredential."""
    command = str(exec_config.get("command") or "")
    if not command:
        raise ConfigError("exec credential plugin without a command")
    if "/" in command and base is not None:
        command = str(_resolve(command, base))
    env = {**os.environ}
    for item in exec_config.get("env") or []:
        env[str(item.get("name"))] = str(item.get("value", ""))
    api_version = str(exec_config.get("apiVersion") or "client.authentication.k8s.io/v1")
    env["KUBERNETES_EXEC_INFO"] = json.dumps(
        {"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
    )
    try:
        process = await asyncio.create_subprocess_exec(
            command,
            *[str(a) for a in exec_config.get("args") or []],
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), EXEC_TIMEOUT_SECONDS)
    except (OSError, TimeoutError) as error:
        raise ConfigError(f"exec credential plugin {command}: {error}") from None
    if process.returncode != 0:
        raise ConfigError(
            f"exec credential plugin {command} exited {process.returncode}:"
            f" {err.decode(errors='replace').strip()[:500]}"
        )
    try:
        credential = json.loads(out)
    except ValueError:
        raise ConfigError(f"exec credential plugin {command} printed no JSON") from None
    if not isinstance(credential, dict):
        raise ConfigError(f"exec credential plugin {command} printed no ExecCredential")
    return credential


def _monotonic_deadline(stamp: str | None) -> float:
    """A monotonic time a little before `stamp` (RFC 3339), or +inf when it never expires."""
    if not stamp:
        return float("inf")
    try:
        moment = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return time.monotonic()  # unreadable: ask again next time
    left = (moment - datetime.datetime.now(datetime.UTC)).total_seconds()
    return time.monotonic() + left - 10.0
