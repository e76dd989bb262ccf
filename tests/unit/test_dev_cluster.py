"""`agentfleet dev cluster stop|start|pause|resume`: what they accept and refuse. The faults
themselves run against a real control plane in tests/integration/test_faults.py."""

import json
from pathlib import Path

from typer.testing import CliRunner

from agentfleet_dev.cli import main_app
from agentfleet_dev.cluster import ClusterState, Process


def test_only_the_control_planes_components_can_be_faulted(tmp_path: Path) -> None:
    result = CliRunner().invoke(main_app, ["cluster", "pause", "coredns", "--dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "'coredns' is not one of kube-apiserver, etcd" in result.output


def test_a_fault_without_a_cluster_says_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(main_app, ["cluster", "stop", "etcd", "--dir", str(tmp_path)])
    assert result.exit_code == 1 and "no cluster in" in result.output


def test_the_state_keeps_how_each_process_was_started(tmp_path: Path) -> None:
    """`start` runs a component again exactly as `up` did: its arguments and environment are
    kept in state.json (and a state written before they were is still read)."""
    state = ClusterState(str(tmp_path), "kubeconfig", "https://127.0.0.1:1")
    state.processes["etcd"] = Process(1, "/bin/etcd", "", ("--name=default",), {"A": "b"})
    state.save()
    loaded = ClusterState.load(tmp_path)
    assert loaded is not None and loaded.processes["etcd"].args == ("--name=default",)
    assert loaded.processes["etcd"].env == {"A": "b"}
    legacy = {
        "directory": str(tmp_path),
        "kubeconfig": "kubeconfig",
        "server": "https://127.0.0.1:1",
        "processes": {"etcd": {"pid": 1, "binary": "/bin/etcd", "argument": ""}},
    }
    (tmp_path / "state.json").write_text(json.dumps(legacy))
    old = ClusterState.load(tmp_path)
    assert old is not None and old.processes["etcd"].args == ()
