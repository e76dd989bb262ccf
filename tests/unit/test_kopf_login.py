"""kopf logs in where the operator's own client connects (runtime/handlers.py `login`): in a
Pod, $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, not kopf's fixed
https://kubernetes.default.svc. The image test runs it for real (tests/image)."""

from __future__ import annotations

from pathlib import Path

import kopf
import pytest
import yaml

from agentfleet.kube import config
from agentfleet.runtime.handlers import login


def service_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    account = tmp_path / "sa"
    account.mkdir()
    (account / "token").write_text("pod-token\n")
    (account / "ca.crt").write_text("not read here\n")
    (account / "namespace").write_text("agentfleet-system")
    monkeypatch.setattr(config, "SERVICE_ACCOUNT_DIR", account)
    return account


def test_in_a_pod_kopf_uses_the_service_host_and_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = service_account(tmp_path, monkeypatch)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    info = login(settings=kopf.OperatorSettings())
    assert info is not None
    assert info.server == "https://10.96.0.1:6443"
    assert (info.token, info.ca_path) == ("pod-token", str(account / "ca.crt"))
    assert info.default_namespace == "agentfleet-system"
    (account / "token").write_text("rotated")  # kopf logs in again after a 401
    assert login(settings=kopf.OperatorSettings()).token == "rotated"  # type: ignore[union-attr]


def test_outside_a_pod_kopf_reads_the_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service_account(tmp_path, monkeypatch)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "a",
        "clusters": [{"name": "a", "cluster": {"server": "https://a:6443"}}],
        "users": [{"name": "a", "user": {"token": "t"}}],
        "contexts": [{"name": "a", "context": {"cluster": "a", "user": "a"}}],
    }))  # fmt: skip
    monkeypatch.setenv("KUBECONFIG", str(path))
    info = login(settings=kopf.OperatorSettings())
    assert info is not None and (info.server, info.token) == ("https://a:6443", "t")
