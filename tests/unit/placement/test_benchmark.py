"""benchmarks/placement.py still runs (timings are the benchmark's business, not a test's)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from tests.unit.placement.fleet import ROOT


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "placement_bench", ROOT / "benchmarks/placement.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_runs_on_a_small_fleet() -> None:
    bench = load_benchmark()
    for policy in ("spread", "binpack"):
        row = bench.run(nodes=40, decisions=200, policy=policy)
        assert row["gpus"] == 320
        assert row["placed"] + row["refused"] == 200
        assert row["placed"] > 0 and row["refused"] > 0  # both paths are measured
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
