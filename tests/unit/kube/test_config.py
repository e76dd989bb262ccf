"""Reading a kubeconfig the way kubectl does, without a Kubernetes client library."""

from __future__ import annotations

import base64
import json
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentfleet.kube import config
from agentfleet_dev.certs import PKI


def write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document))
    return path


def kubeconfig(
    user: dict[str, Any], cluster: dict[str, Any] | None = None, name: str = "a"
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": name,
        "clusters": [{"name": name, "cluster": cluster or {"server": f"https://{name}:6443/"}}],
        "users": [{"name": name, "user": user}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": name, "namespace": f"ns-{name}"}}
        ],
    }


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    pki = PKI(tmp_path / "pki")
    pki.create()
    return pki


async def test_a_token_and_the_context_namespace(tmp_path: Path) -> None:
    path = write(tmp_path / "config", kubeconfig({"token": "secret"}))
    cluster = await config.load(str(path))
    assert cluster.server == "https://a:6443"
    assert cluster.namespace == "ns-a" and cluster.context == "a"
    assert await cluster.credentials.authorization() == "Bearer secret"


async def test_files_merge_the_way_kubectl_merges_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write(tmp_path / "one", kubeconfig({"token": "first"}, name="a"))
    second_doc = kubeconfig({"token": "second"}, name="b")
    second_doc["users"].append({"name": "a", "user": {"token": "ignored: a is set already"}})
    second = write(tmp_path / "two", second_doc)
    monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'missing'}:{second}")
    assert config.list_contexts() == (["a", "b"], "a")  # the first current-context wins
    a = await config.load()
    assert await a.credentials.authorization() == "Bearer first"
    b = await config.load(context="b")
    assert b.server == "https://b:6443" and await b.credentials.authorization() == "Bearer second"


async def test_a_context_that_does_not_exist_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "config", kubeconfig({"token": "t"}))
    with pytest.raises(config.ConfigError, match='context "nope" is not in the kubeconfig'):
        await config.load(str(path), context="nope")
    with pytest.raises(config.ConfigError, match="does not exist"):
        await config.load(str(tmp_path / "absent"))


async def test_relative_token_file_is_read_from_the_kubeconfigs_folder(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    path = write(tmp_path / "config", kubeconfig({"tokenFile": "token"}))
    cluster = await config.load(str(path))
    assert await cluster.credentials.authorization() == "Bearer from-file"


async def test_client_certificates_as_files_and_as_data(tmp_path: Path, pki: PKI) -> None:
    ca = {"server": "https://127.0.0.1:6443", "certificate-authority": str(pki.path("ca.crt"))}
    files = {"client-certificate": str(pki.path("admin.crt")), "client-key": "pki/admin.key"}
    cluster = await config.load(str(write(tmp_path / "config", kubeconfig(files, ca))))
    assert await cluster.credentials.authorization() is None  # the certificate is the caller
    assert cluster.ssl_context.cert_store_stats()["x509_ca"] == 1

    def data(name: str) -> str:
        return base64.b64encode(pki.path(name).read_bytes()).decode()

    inline = {"client-certificate-data": data("admin.crt"), "client-key-data": data("admin.key")}
    ca_inline = {"server": "https://127.0.0.1:6443", "certificate-authority-data": data("ca.crt")}
    cluster = await config.load(str(write(tmp_path / "inline", kubeconfig(inline, ca_inline))))
    assert cluster.ssl_context.cert_store_stats()["x509_ca"] == 1
    missing_key = {"client-certificate-data": data("admin.crt")}
    with pytest.raises(config.ConfigError, match="no key"):
        await config.load(str(write(tmp_path / "nokey", kubeconfig(missing_key))))


def plugin(tmp_path: Path, credential: dict[str, Any]) -> Path:
    script = tmp_path / "plugin.py"
    script.write_text(
        f"import json, os, sys\n"
        f"assert json.loads(os.environ['KUBERNETES_EXEC_INFO'])['kind'] == 'ExecCredential'\n"
        f"open({str(tmp_path / 'calls')!r}, 'a').write('x')\n"
        f"print(json.dumps({credential!r}))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


async def test_an_exec_plugin_token_is_cached_until_it_expires(tmp_path: Path) -> None:
    script = plugin(
        tmp_path,
        {"kind": "ExecCredential", "status": {"token": "exec-token"}},  # no expiry: kept
    )
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
                     "args": [str(script)]}}  # fmt: skip
    cluster = await config.load(str(write(tmp_path / "config", kubeconfig(user))))
    assert await cluster.credentials.authorization() == "Bearer exec-token"
    assert await cluster.credentials.authorization() == "Bearer exec-token"
    assert (tmp_path / "calls").read_text() == "x"  # run once, at load


async def test_an_expired_exec_token_runs_the_plugin_again(tmp_path: Path) -> None:
    status = {"token": "short", "expirationTimestamp": "2000-01-01T00:00:00Z"}
    script = plugin(tmp_path, {"kind": "ExecCredential", "status": status})
    user = {"exec": {"command": sys.executable, "args": [str(script)]}}
    cluster = await config.load(str(write(tmp_path / "config", kubeconfig(user))))
    assert await cluster.credentials.authorization() == "Bearer short"
    assert (tmp_path / "calls").read_text() == "xx"


async def test_a_failing_plugin_and_legacy_auth_providers_are_refused(tmp_path: Path) -> None:
    failing = {"exec": {"command": sys.executable, "args": ["-c", "import sys; sys.exit(3)"]}}
    with pytest.raises(config.ConfigError, match="exited 3"):
        await config.load(str(write(tmp_path / "a", kubeconfig(failing))))
    legacy = {"auth-provider": {"name": "gcp"}}
    with pytest.raises(config.ConfigError, match="auth-provider 'gcp'"):
        await config.load(str(write(tmp_path / "b", kubeconfig(legacy))))


async def test_in_a_pod_the_service_account_is_used_and_its_token_reread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pki: PKI
) -> None:
    account = tmp_path / "sa"
    account.mkdir()
    (account / "token").write_text("pod-token")
    (account / "ca.crt").write_bytes(pki.path("ca.crt").read_bytes())
    (account / "namespace").write_text("agentfleet-system")
    monkeypatch.setattr(config, "SERVICE_ACCOUNT_DIR", account)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config
    cluster = await config.load()
    assert cluster.in_cluster and cluster.server == "https://10.96.0.1:443"
    assert cluster.namespace == "agentfleet-system"
    assert await cluster.credentials.authorization() == "Bearer pod-token"
    (account / "token").write_text("rotated")
    monkeypatch.setattr(config, "TOKEN_REREAD_SECONDS", 0.0)
    assert await cluster.credentials.authorization() == "Bearer rotated"
    # A kubeconfig wins for the CLI; the operator prefers its Pod's identity.
    (tmp_path / ".kube").mkdir()
    write(tmp_path / ".kube" / "config", kubeconfig({"token": "t"}))
    assert not (await config.load()).in_cluster
    assert (await config.load(prefer_in_cluster=True)).in_cluster
    assert json.dumps(config.list_contexts()) == '[["a"], "a"]'
