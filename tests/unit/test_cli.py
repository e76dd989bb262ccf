"""The user commands without a cluster: local validation, dry runs, output and exit codes.

Everything here is refused or printed before any request is sent; the same commands against
a real API server are in tests/integration/test_cli.py.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from agentfleet.api import constants as c
from agentfleet.api.models import AIAgent
from agentfleet.frontends.cli import ExitCode
from agentfleet.main import app  # the whole command, as installed: run, crd, node-agent too

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imports"
runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def unreachable_kubeconfig(tmp_path: Path) -> str:
    """A kubeconfig whose API server refuses connections (a port nobody listens on)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "x", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x", "namespace": "ns"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    return str(path)


def test_help_lists_the_user_commands_and_the_exit_codes() -> None:
    code, out, _ = invoke("--help")
    assert code == 0
    for command in ("spawn", "list", "get", "logs", "delete", "scale", "gpus", "nodes", "import"):
        assert f" {command} " in out
    assert "3 not found" in " ".join(out.split())
    assert "run " in out and "crd " in out  # the operator's own commands stay


def test_spawn_dry_run_maps_hypercore_flags() -> None:
    code, out, err = invoke(
        "spawn", "market", "--image-ref", "docker.io/my-org/market:latest",
        "--cpu", "2", "--mem", "2048", "--ports", "8080:8080",
        "--env", "API_KEY=secret", "--env", "LOG_LEVEL=info",
        "--gpu", "1", "--vram", "24", "--replicas", "3", "--runtime", "kata",
        "--type", "discovery", "-n", "team-a", "--dry-run",
    )  # fmt: skip
    assert code == 0, err
    body = yaml.safe_load(out)
    assert body["kind"] == c.KIND and body["metadata"] == {"name": "market", "namespace": "team-a"}
    assert body["spec"] == {
        "agentType": "discovery",
        "image": "docker.io/my-org/market:latest",
        "resources": {"requests": {"cpu": "2", "memory": "2048Mi"}, "limits": {"memory": "2048Mi"}},
        "gpu": {"count": 1, "vram": "24Gi"},
        "env": [{"name": "API_KEY", "value": "secret"}, {"name": "LOG_LEVEL", "value": "info"}],
        "replicas": 3,
        "runtimeClassName": "kata",
    }
    assert err == ""  # 8080:8080 is a fixed port: nothing to warn about
    AIAgent.from_body(body)


def test_spawn_warns_about_ports_agents_do_not_serve() -> None:
    code, _, err = invoke("spawn", "a", "--image", "i:1", "--port", "3000:3000", "--dry-run")
    assert code == 0
    assert "warning: port 3000:3000" in err and "8080" in err


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["Bad_Name", "--image", "i"], "NAME"),
        (["a", "--image", "i", "--type", "wizard"], "--type"),
        (["a", "--image", "i", "--mem", "lots"], "--mem"),
        (["a", "--image", "i", "--cpu", "-1"], "--cpu"),
        (["a", "--image", "i", "--vram", "0"], "--vram"),
        (["a", "--image", "i", "--env", "NOEQUALS"], "--env"),
        (["a", "--image", "i", "--gpu", "99"], "--gpu/--vram"),
        (["a", "--image", "i", "--replicas", "-2"], "--replicas"),
        (["a", "--image", "i", "--port", "web"], "--port"),
    ],
)
def test_invalid_spawn_flags_exit_2_naming_the_flag(args: list[str], named: str) -> None:
    code, out, err = invoke("spawn", *args, "--kubeconfig", "/nonexistent")
    assert code == ExitCode.USAGE
    assert named in err and out == ""


def test_missing_required_flag_is_a_usage_error() -> None:
    code, _, err = invoke("spawn", "a")
    assert code == 2 and "--image" in err


def test_import_dry_run_prints_the_agent_and_warns() -> None:
    code, out, err = invoke("import", str(FIXTURES / "market-intelligence.hac.toml"), "--dry-run")
    assert code == 0
    body = yaml.safe_load(out)
    assert body["metadata"]["name"] == "market-intelligence-agent"
    assert body["spec"]["resources"]["requests"] == {"cpu": "2", "memory": "2048Mi"}
    for field in ("kernel", "drive", "interface"):
        assert f"[hardware].{field} has no meaning on Kubernetes" in err


def test_import_dry_run_of_service_yaml_with_overrides() -> None:
    code, out, _ = invoke(
        "import", str(FIXTURES / "yolo-service.yaml"), "--dry-run",
        "--name", "yolo", "--type", "discovery", "-n", "vision",
    )  # fmt: skip
    assert code == 0
    body = yaml.safe_load(out)
    assert body["metadata"]["name"] == "yolo" and body["metadata"]["namespace"] == "vision"
    assert body["spec"]["agentType"] == "discovery"
    assert body["spec"]["gpu"] == {"count": 1, "vram": "8Gi"}


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("invalid-cores.hac.toml", "invalid-cores.hac.toml:5: [hardware].cores"),
        ("syntax-error.hac.toml", "syntax-error.hac.toml:7: not valid TOML"),
        ("invalid-port.service.yaml", "invalid-port.service.yaml:3: port"),
    ],
)
def test_invalid_import_files_exit_2_naming_the_line(name: str, where: str) -> None:
    code, out, err = invoke("import", str(FIXTURES / name))
    assert code == ExitCode.USAGE and out == ""
    assert where in err


def test_unknown_output_format_is_a_usage_error() -> None:
    code, _, err = invoke("list", "-o", "table")
    assert code == ExitCode.USAGE and "unknown output format 'table'" in err


@pytest.mark.parametrize(
    "args",
    [("list",), ("get", "a"), ("delete", "a"), ("scale", "a", "2"), ("nodes",), ("gpus",)],
)
def test_an_unreachable_api_server_exits_1_with_a_message(
    args: tuple[str, ...], unreachable_kubeconfig: str
) -> None:
    code, _, err = invoke(*args, "--kubeconfig", unreachable_kubeconfig)
    assert code == ExitCode.ERROR
    assert "cannot reach the Kubernetes API server" in err


def test_a_missing_kubeconfig_exits_1(tmp_path: Path) -> None:
    code, _, err = invoke("list", "--kubeconfig", str(tmp_path / "absent"))
    assert code == ExitCode.ERROR
    assert f"cannot use the kubeconfig: {tmp_path / 'absent'} does not exist" in err


def test_several_contexts_report_each_unreachable_cluster_by_name(
    unreachable_kubeconfig: str,
) -> None:
    """list/gpus across clusters: a cluster that does not answer is a warning naming its
    context (the others would still be shown), and the exit code says something failed."""
    for command in ("list", "gpus"):
        code, _, err = invoke(command, "--all-contexts", "--kubeconfig", unreachable_kubeconfig)
        assert code == 1, err  # one context: fails like a plain command
        assert "cannot reach the Kubernetes API server" in err
    config = json.loads(Path(unreachable_kubeconfig).read_text())
    config["contexts"].append({"name": "y", "context": {"cluster": "x", "user": "x"}})
    Path(unreachable_kubeconfig).write_text(json.dumps(config))
    code, _, err = invoke("list", "--all-contexts", "--kubeconfig", unreachable_kubeconfig)
    assert code == 1
    text = " ".join(err.split())
    assert "context x: cannot reach" in text and "context y: cannot reach" in text
    code, _, err = invoke(
        "gpus", "--context", "x", "--all-contexts", "--kubeconfig", unreachable_kubeconfig
    )
    assert code == 2 and "not both" in err
