"""`python -m benchmarks`: run the harness (`--repeat` times), print the tables, save the JSON.

Uses the cluster $KUBECONFIG points at if set (every run on it); otherwise starts a local
control plane of its own for each run (the e2e nodes, kwok nodes for big fleets, KEDA's
operator when the autoscaled fleet is asked for) and stops it after the run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks import controlplane, harness, readme, report, runtime_env
from benchmarks.context import FLEETS, SCENARIOS, BenchConfig
from benchmarks.kube import ROOT, ClusterAccess

RESULTS = ROOT / "benchmarks" / "results"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _names(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip() and name != "none")
    unknown = set(names) - set(allowed)
    if unknown:
        sys.exit(f"unknown {what}: {', '.join(sorted(unknown))} (known: {', '.join(allowed)})")
    return names


def parse(argv: list[str] | None) -> argparse.Namespace:
    defaults = BenchConfig()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--agents", type=int, default=defaults.agents, help="N (default 1000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs; values are their medians")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument(
        "--idle-seconds", type=float, default=defaults.idle_seconds, help="idle window"
    )
    parser.add_argument("--probes", type=int, default=defaults.probes)
    parser.add_argument("--workers", type=int, default=None, help="the operator's --workers")
    parser.add_argument(
        "--operator-arg",
        action="append",
        default=[],
        help="one more `agentfleet run` flag (repeatable), e.g. --operator-arg=--qps=200",
    )
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the baseline (the table has no ratios)"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(defaults.scenarios),
        help="comma-separated subset of create,idle,restart,edit,kill (create always runs)",
    )
    parser.add_argument(
        "--fleets",
        default=",".join(defaults.fleets),
        help="the later rows, comma-separated: gpu,mesh,keda (or none)",
    )
    parser.add_argument(
        "--mesh-growth",
        default="",
        help="mesh fleets of these sizes, one namespace each, e.g. 100,10000 (flat growth)",
    )
    parser.add_argument(
        "--no-main", action="store_true", help="skip the baseline and the main fleet"
    )
    parser.add_argument(
        "--operator-python",
        default="",
        help="the interpreter to run the operator with (default: a runtime-only environment "
        "made from requirements/operator.txt in _output/bench-runtime; `dev`: this one)",
    )
    parser.add_argument("--json", type=Path, default=None, help="where to save the result")
    parser.add_argument(
        "--cluster-dir",
        type=Path,
        default=ROOT / "_output" / "bench-cluster",
        help="the local control plane's directory (when $KUBECONFIG is not set)",
    )
    parser.add_argument("--keep-cluster", action="store_true", help="leave the last one running")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="operator logs etc. (default: _output/bench/…)"
    )
    return parser.parse_args(argv)


def config_of(args: argparse.Namespace) -> BenchConfig:
    return BenchConfig(
        agents=args.agents,
        idle_seconds=args.idle_seconds,
        probes=args.probes,
        baseline=not args.no_baseline,
        workers=args.workers,
        operator_args=tuple(args.operator_arg),
        scenarios=_names(args.scenarios, SCENARIOS, "scenario(s)"),
        fleets=_names(args.fleets, FLEETS, "fleet(s)"),
        mesh_growth=tuple(int(size) for size in args.mesh_growth.split(",") if size.strip()),
        main=not args.no_main,
        operator_python=operator_python(args.operator_python),
    )


def operator_python(asked: str) -> str:
    """The operator's interpreter: by default one with only the runtime dependencies, as in
    the image (the dev environment's extra libraries change what kopf imports)."""
    if asked == "dev":
        return sys.executable
    if asked:
        return asked
    return str(runtime_env.python(log=log))


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    config = config_of(args)
    from agentfleet_dev import build
    from agentfleet_dev.cluster import LocalCluster

    kubectl = build.toolchain(log).bin["kubectl"]
    # One directory per invocation (operator logs, kubeconfigs): invocations may overlap.
    workdir = args.workdir or ROOT / "_output" / "bench" / time.strftime(
        f"%Y%m%d-%H%M%S-{os.getpid()}"
    )
    existing = os.environ.get("KUBECONFIG")
    runs: list[dict[str, Any]] = []
    for number in range(1, args.repeat + 1):
        log(f"run {number} of {args.repeat}")
        local: LocalCluster | None = None
        if existing and Path(existing).exists():
            log(f"using the cluster of KUBECONFIG={existing}")
            # The project's local control plane (`make cluster-up`) takes kwok nodes too.
            own = bool(controlplane.processes(Path(existing)))
            access = ClusterAccess(Path(existing), kubectl, local=own)
        else:
            local = LocalCluster(args.cluster_dir, log)
            state = local.up(
                nodes=sorted((ROOT / "tests" / "e2e" / "nodes").glob("*.yaml")),
                keda="keda" in config.fleets,
            )
            access = ClusterAccess(Path(state.kubeconfig), kubectl, local=True)
        try:
            result = harness.run(
                access, config, workdir / f"run-{number}", log, delete_namespaces=local is None
            )
            result["reference"] = reference(config)
            result["rows"] = [row.as_dict() for row in report.rows(result)]
            runs.append(result)
            print_run(result, number, args.repeat)
            # After every run: an interrupted --repeat keeps the runs it finished.
            saved = combine(runs)
            path = args.json or RESULTS / file_name(saved)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(saved, indent=1) + "\n")
            log(f"saved {path} ({number} of {args.repeat} runs)")
        finally:
            if local is not None and not (args.keep_cluster and number == args.repeat):
                local.down()
    saved = combine(runs)
    path = args.json or RESULTS / file_name(saved)
    table = [report.Row.of(row) for row in saved["rows"]]
    meta = saved["meta"]
    print(
        f"\nagentfleet bench: {config.agents:,} agents, commit {meta['commit']}"
        f"{' (+ uncommitted changes)' if meta['uncommitted_changes'] else ''}, "
        f"{meta['machine']['cpus']} CPUs, {meta['date']}, "
        f"{'median of ' + str(len(runs)) + ' runs (min–max)' if len(runs) > 1 else 'one run'}\n"  # noqa: RUF001
    )
    print(report.markdown(table))
    costs = [report.CostRow(**row) for row in saved["cost"]]
    if costs:
        print("\nWhat the control plane spent per window:\n")
        print(report.cost_markdown(costs))
    print(f"\nsaved {path}")
    failed = report.failures(table)
    if args.strict and failed:
        log(f"--strict: {len(failed)} target(s) failed: {'; '.join(failed)}")
        sys.exit(1)


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One file for all runs: each run whole, the table of medians, the cost medians."""
    first, last = runs[0], runs[-1]
    meta = {
        **first["meta"],
        "load_average_at_end": last["meta"].get("load_average_at_end"),
        "repeat": len(runs),
    }
    rows = report.aggregate([[report.Row.of(row) for row in run["rows"]] for run in runs])
    costs = report.aggregate_costs([report.cost_rows(run) for run in runs])
    return {
        "meta": meta,
        "config": first["config"],
        "reference": first.get("reference"),
        "rows": [row.as_dict() for row in rows],
        "cost": [asdict(row) for row in costs],
        "runs": runs,
    }


def file_name(saved: dict[str, Any]) -> str:
    size, what = readme.kind(saved)
    stem = f"bench-{size}" if what == "main" else f"bench-{what.replace(' ', '-')}-{size}"
    return f"{stem}-{saved['meta']['date'].replace(':', '')}-{saved['meta']['commit']}.json"


def reference(config: BenchConfig) -> dict[str, Any] | None:
    """For fleets above 1,000: the operator's CPU per agent in the newest committed
    1,000-agent result (the linear-scaling target)."""
    if config.agents <= 1000 or not config.main:
        return None
    files = {p: json.loads((ROOT / p).read_text()) for p in readme.committed()}
    thousand = {p: r for p, r in files.items() if readme.kind(r) == (1000, "main")}
    if not thousand:
        return None
    path = readme.newest(thousand)[(1000, "main")]
    for row in thousand[path]["rows"]:
        if row["measure"] == "operator CPU, start to converged" and row["value"] is not None:
            return {"cpu_ms_per_agent": round(row["value"] * 1000 / 1000, 2), "file": path}
    return None


def print_run(result: dict[str, Any], number: int, total: int) -> None:
    if total == 1:
        return
    log(
        f"\nrun {number} of {total}:\n{report.markdown([report.Row.of(r) for r in result['rows']])}"
    )
