"""One benchmark run: set up, the five scenarios, the baseline, the later rows, the table."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import baseline, nodes, report, scenarios
from benchmarks.context import Bench, BenchConfig, Log
from benchmarks.fleet import RUN_LABEL, AgentTracker
from benchmarks.kube import ROOT, BenchError, ClusterAccess, operator_kubeconfig
from benchmarks.operator_process import OperatorProcess
from benchmarks.writes import WriteMeter


def run(
    access: ClusterAccess,
    config: BenchConfig,
    workdir: Path,
    log: Log,
    delete_namespaces: bool = True,
) -> dict[str, Any]:
    """Measure the operator; returns everything measured plus the table's rows. Namespaces
    are left to the cluster's teardown when `delete_namespaces` is false (a throwaway
    cluster), deleted otherwise."""
    run_id = uuid.uuid4().hex[:6]
    namespace = f"bench-{run_id}"
    workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"meta": meta(config, run_id), "config": config.as_dict()}

    log("installing the CRD, the operator's RBAC and the write-counting FlowSchemas")
    access.install_crd()
    identity = operator_kubeconfig(access, workdir / "operator.kubeconfig")
    meter = WriteMeter(access, identity)
    meter.install()
    result["meta"]["writes_by_identity"] = meter.by_identity
    if access.local:
        added = nodes.ensure_capacity(
            access, nodes.pods_needed(config.agents, config.probes, config.late_fraction)
        )
        result["meta"]["bench_nodes"] = added
    access.create_namespace(namespace, {RUN_LABEL: run_id})
    tracker = AgentTracker(access, namespace, log)
    operator = OperatorProcess(
        workdir / "operator.kubeconfig",
        workdir / "operator.log",
        workers=config.workers,
        args=config.operator_args,
    )
    bench = Bench(access, config, meter, operator, tracker, namespace, run_id, workdir, log)
    tracker.start()
    try:
        log(f"starting the operator (log: {operator.log_path})")
        result["operator_empty"] = scenarios.start_operator(bench)
        steps: list[tuple[str, str, Callable[[Bench], dict[str, Any]]]] = [
            ("create", f"1+6. {config.agents} agents at once", scenarios.create_at_once),
            ("idle", f"2. idle {config.idle_seconds:g} s", scenarios.idle_window),
            ("restart", "3. restart with all converged", scenarios.restart),
            ("edit", f"4. {config.agents} spec edits", scenarios.edit_all),
            ("kill", "5. SIGKILL mid-converge, restart", scenarios.kill_mid_converge),
        ]
        result["scenarios"] = {}
        failed = ""
        for key, title, scenario in steps:
            if key not in config.scenarios and key != "create":
                result["scenarios"][key] = {"skipped": "not chosen (--scenarios)"}
                continue
            if failed:
                result["scenarios"][key] = {"error": f"skipped after `{failed}` failed"}
                continue
            log(title)
            try:
                result["scenarios"][key] = scenario(bench)
            except BenchError as error:  # the operator did not do it: a result, not a crash
                log(f"  FAILED: {error}")
                result["scenarios"][key] = {"error": str(error)}
                if operator.process and operator.process.poll() is None:  # what it holds
                    result["scenarios"][key]["process"] = operator.stats().as_dict()
                failed = key
                continue
            log(f"  {summary(result['scenarios'][key])}")
        operator.close()
        if config.baseline:
            log("baseline: kubectl apply --server-side of the rendered objects")
            result["baseline"] = baseline.measure(bench, f"{namespace}-baseline")
            log(f"  {summary(result['baseline'])}")
        else:
            result["baseline"] = {"skipped": "not measured (--no-baseline): no ratios"}
        result["extras"] = []
        if config.extras:
            for extra in report.EXTRA_ROWS:
                result["extras"] += extra()
    except BaseException:
        log(f"operator log tail:\n{operator.log_tail()}")
        raise
    finally:
        tracker.stop()
        operator.close()
        if delete_namespaces:
            access.kubectl(
                "delete", "namespace", "-l", f"{RUN_LABEL}={run_id}", "--wait=true", check=False
            )
        meter.uninstall()
    result["meta"]["load_average_at_end"] = os.getloadavg()
    result["rows"] = [row.as_dict() for row in report.rows(result)]
    return result


def meta(config: BenchConfig, run_id: str) -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "run": run_id,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit,
        "uncommitted_changes": bool(dirty),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
    }


def summary(measured: dict[str, Any]) -> str:
    """One progress line: the scenario's top-level numbers."""
    return ", ".join(
        f"{key}={value}" for key, value in measured.items() if isinstance(value, int | float)
    )
