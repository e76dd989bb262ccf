"""`python -m benchmarks`: run the harness, print the table, save the JSON.

Uses the cluster $KUBECONFIG points at if set; otherwise starts a local control plane of its
own (the e2e nodes, plus kwok nodes for big fleets) and stops it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from benchmarks import harness, report
from benchmarks.context import BenchConfig
from benchmarks.kube import ROOT, ClusterAccess

RESULTS = ROOT / "benchmarks" / "results"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    defaults = BenchConfig()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--agents", type=int, default=defaults.agents, help="N (default 1000)")
    parser.add_argument(
        "--idle-seconds", type=float, default=defaults.idle_seconds, help="idle window"
    )
    parser.add_argument("--probes", type=int, default=defaults.probes)
    parser.add_argument("--create-parallel", type=int, default=defaults.create_parallel)
    parser.add_argument(
        "--baseline-parallel",
        type=int,
        default=defaults.baseline_parallel,
        help="kubectl processes for the baseline (default 1, as issue 17 measured it)",
    )
    parser.add_argument("--workers", type=int, default=None, help="the operator's --workers")
    parser.add_argument(
        "--operator-arg",
        action="append",
        default=[],
        help="one more `agentfleet run` flag (repeatable), e.g. --operator-arg=--qps=200",
    )
    parser.add_argument(
        "--no-baseline-ready", action="store_true", help="skip timing the baseline's rollout"
    )
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the baseline (the table has no ratios)"
    )
    parser.add_argument("--no-extras", action="store_true", help="skip the placement row")
    parser.add_argument(
        "--scenarios",
        default=",".join(defaults.scenarios),
        help="comma-separated subset of create,idle,restart,edit,kill (create always runs)",
    )
    parser.add_argument("--json", type=Path, default=None, help="where to save the result")
    parser.add_argument(
        "--cluster-dir",
        type=Path,
        default=ROOT / "_output" / "bench-cluster",
        help="the local control plane's directory (when $KUBECONFIG is not set)",
    )
    parser.add_argument("--keep-cluster", action="store_true", help="leave it running")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="operator log etc. (default: _output/bench/…)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    config = BenchConfig(
        agents=args.agents,
        idle_seconds=args.idle_seconds,
        probes=args.probes,
        create_parallel=args.create_parallel,
        baseline_parallel=args.baseline_parallel,
        baseline_ready=not args.no_baseline_ready,
        baseline=not args.no_baseline,
        workers=args.workers,
        operator_args=tuple(args.operator_arg),
        extras=not args.no_extras,
        scenarios=tuple(name.strip() for name in args.scenarios.split(",") if name.strip()),
    )
    unknown = set(config.scenarios) - set(BenchConfig().scenarios)
    if unknown:
        sys.exit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    from agentfleet_dev import build
    from agentfleet_dev.cluster import LocalCluster

    kubectl = build.toolchain(log).bin["kubectl"]
    # One directory per run (operator log, its kubeconfig, manifests): runs may overlap.
    workdir = args.workdir or ROOT / "_output" / "bench" / time.strftime(
        f"%Y%m%d-%H%M%S-{os.getpid()}"
    )
    existing = os.environ.get("KUBECONFIG")
    local: LocalCluster | None = None
    if existing and Path(existing).exists():
        log(f"using the cluster of KUBECONFIG={existing}")
        access = ClusterAccess(Path(existing), kubectl, local=False)
    else:
        local = LocalCluster(args.cluster_dir, log)
        state = local.up(nodes=sorted((ROOT / "tests" / "e2e" / "nodes").glob("*.yaml")))
        access = ClusterAccess(Path(state.kubeconfig), kubectl, local=True)
    try:
        result = harness.run(access, config, workdir, log, delete_namespaces=local is None)
    finally:
        if local is not None and not args.keep_cluster:
            local.down()
    path = args.json or RESULTS / (
        f"bench-{config.agents}-{result['meta']['date'].replace(':', '')}"
        f"-{result['meta']['commit']}.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    table = [report.Row(**row) for row in result["rows"]]
    meta = result["meta"]
    print(
        f"agentfleet bench: {config.agents:,} agents, commit {meta['commit']}"
        f"{' (+ uncommitted changes)' if meta['uncommitted_changes'] else ''}, "
        f"{meta['cpus']} CPUs, {meta['date']}\n"
    )
    print(report.markdown(table))
    print(f"\nsaved {path}")
    if args.strict and any(row.passed is False for row in table):
        sys.exit(1)
