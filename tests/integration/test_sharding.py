"""A fleet split across operators: each serves only its share, and an operator whose share
could overlap a live one refuses to start (issue 17, sharding at small scale)."""

from __future__ import annotations

import time

import pytest
import yaml

from tests.conftest import SHARD_LABEL, Cluster, Operator, operator_kubeconfig
from tests.conftest import start_operator as start
from tests.integration.test_operator import agent_yaml, apply, wait_ready

pytestmark = pytest.mark.cluster


def in_shard(name: str, namespace: str, shard: str) -> str:
    body = yaml.safe_load(agent_yaml(name, namespace, replicas=1))
    body["metadata"]["labels"] = {SHARD_LABEL: shard}
    return yaml.safe_dump(body)


def shard(cluster: Cluster, shard_id: str, selector: str, name: str, wait: bool = True) -> Operator:
    kubeconfig = operator_kubeconfig(cluster, name=f"shard-{name}")
    args = (
        "--shard-id",
        shard_id,
        "--agent-selector",
        selector,
        "--shard-namespace",
        "agentfleet-system",
    )
    return start(kubeconfig, *args, name=f"shard-{name}", wait=wait)


def refused(operator: Operator) -> str:
    """The operator exits on its own and says why."""
    try:
        operator.process.wait(60)
    except Exception:
        operator.stop()
        raise AssertionError("the operator did not refuse to start") from None
    return operator.log_path.read_text()


def test_shards_serve_only_their_agents_and_never_overlap(
    cluster: Cluster, crd: None, namespace: str
) -> None:
    a = shard(cluster, "a", f"{SHARD_LABEL}=a", "a")
    b = shard(cluster, "b", f"{SHARD_LABEL}=b", "b")
    try:
        for name, which in (("one", "a"), ("two", "a"), ("three", "b")):
            apply(cluster, in_shard(name, namespace, which))
        for name in ("one", "two", "three"):
            wait_ready(cluster, namespace, name)
        a_log, b_log = a.log_path.read_text(), b.log_path.read_text()
        assert f"applying Deployment {namespace}/one" in a_log
        assert f"applying Deployment {namespace}/three" in b_log
        assert f"{namespace}/three" not in a_log and f"{namespace}/one" not in b_log

        overlapping = shard(cluster, "c", f"{SHARD_LABEL} in (a, z)", "c", wait=False)
        log = refused(overlapping)
        assert "refusing to serve shard 'c'" in log and "shard 'a'" in log
        assert overlapping.process.returncode != 0

        duplicate = shard(cluster, "a", f"{SHARD_LABEL}=a", "a-again", wait=False)
        assert "is already served by" in refused(duplicate)
    finally:
        a.stop()
        b.stop()
    # A clean stop lets the claim lapse: a replacement may start at once.
    replacement = shard(cluster, "a", f"{SHARD_LABEL}=a", "a-replacement")
    try:
        assert replacement.healthy()
        time.sleep(1)
    finally:
        replacement.stop()
