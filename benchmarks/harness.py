"""One benchmark run: set up, the baseline, the main fleet's scenarios, the later rows.

Order: the baseline variants first (each in a namespace deleted before the next thing runs),
then the main fleet with its operator, then each later fleet with an operator of its own.
Every measured stretch starts on a cluster holding none of the previous stretch's objects.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import baseline, extras, nodes, report, runtime_env, scenarios
from benchmarks.context import Bench, BenchConfig, Fleet, Log
from benchmarks.fleet import RUN_LABEL
from benchmarks.identity import install_client, install_operator
from benchmarks.kube import ROOT, BenchError, ClusterAccess
from benchmarks.watch import Watches
from benchmarks.writes import Meter


def run(
    access: ClusterAccess,
    config: BenchConfig,
    workdir: Path,
    log: Log,
    delete_namespaces: bool = True,
) -> dict[str, Any]:
    """Measure the operator; returns everything measured plus the table's rows."""
    run_id = uuid.uuid4().hex[:6]
    workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"meta": meta(run_id), "config": config.as_dict()}

    log("installing the CRD, the identities and the request-counting FlowSchemas")
    access.install_crd()
    operator = install_operator(access, workdir / "operator.kubeconfig")
    client = install_client(access, workdir / "client.kubeconfig")
    meter = Meter(access, {"operator": operator, "client": client})
    meter.install()
    result["meta"]["writes_by_identity"] = meter.by_identity
    operator_python = Path(config.operator_python or sys.executable)
    # kopf imports the synchronous kubernetes client when installed: say whether it was.
    result["meta"]["operator_python"] = {
        "path": str(operator_python),
        "kubernetes_client_installed": "kubernetes" in runtime_env.distributions(operator_python),
    }
    result["meta"]["control_plane"] = sorted(meter.pids)
    if access.local:
        result["meta"]["bench_nodes"] = nodes.ensure_capacity(
            access, nodes.pods_needed(config.agents, config.probes, config.late_fraction)
        )
    watches = Watches(access.kubeconfig)
    watches.start()
    bench = Bench(
        access,
        config,
        meter,
        watches,
        run_id,
        workdir,
        log,
        workdir / "operator.kubeconfig",
        workdir / "client.kubeconfig",
    )
    try:
        if config.main:
            if config.baseline:
                result["baseline"] = baseline.measure(bench)
            else:
                result["baseline"] = {"skipped": "not measured (--no-baseline): no ratios"}
            main_fleet(bench, result)
        result["extras"] = {}
        for flavour in config.fleets:
            log(f"{flavour} fleet: {config.agents:,} agents")
            result["extras"][flavour] = extras.run_fleet(bench, flavour, config.agents)
            log(f"  {summary(result['extras'][flavour])}")
        if config.mesh_growth:
            log(f"mesh growth: {', '.join(map(str, config.mesh_growth))} agents in one namespace")
            result["mesh_growth"] = extras.mesh_growth(bench, config.mesh_growth)
    finally:
        watches.stop()
        if delete_namespaces:
            access.kubectl(
                "delete", "namespace", "-l", f"{RUN_LABEL}={run_id}", "--wait=true", check=False
            )
        meter.uninstall()
    result["meta"]["load_average_at_end"] = os.getloadavg()
    result["rows"] = [row.as_dict() for row in report.rows(result)]
    return result


def main_fleet(bench: Bench, result: dict[str, Any]) -> None:
    """The five scenarios, in one namespace, with one operator (restarted by two of them)."""
    config, log = bench.config, bench.log
    fleet = bench.fleet("main")
    steps: list[tuple[str, str, Callable[[Fleet], dict[str, Any]]]] = [
        ("create", f"1+6. {config.agents} agents at once", scenarios.create_at_once),
        ("idle", f"2. idle {config.idle_seconds:g} s", scenarios.idle_window),
        ("restart", "3. restart with all converged", scenarios.restart),
        ("edit", f"4. {config.agents} spec edits", scenarios.edit_all),
        ("kill", "5. SIGKILL mid-converge, restart", scenarios.kill_mid_converge),
    ]
    result["scenarios"] = {}
    try:
        log(f"starting the operator (log: {fleet.running.log_path})")
        result["operator_empty"] = scenarios.start_operator(fleet)
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
                result["scenarios"][key] = scenario(fleet)
            except BenchError as error:  # the operator did not do it: a result, not a crash
                log(f"  FAILED: {error}")
                result["scenarios"][key] = {"error": str(error)}
                operator = fleet.running
                if operator.process and operator.process.poll() is None:  # what it holds
                    result["scenarios"][key]["process"] = operator.stats().as_dict()
                failed = key
                continue
            log(f"  {summary(result['scenarios'][key])}")
    except BaseException:
        log(f"operator log tail:\n{fleet.running.log_tail()}")
        raise
    finally:
        bench.drop(fleet)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_gib": round(memory_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def meta(run_id: str) -> dict[str, Any]:
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
        "machine": machine(),
        "load_average_at_start": os.getloadavg(),
    }


def summary(measured: dict[str, Any]) -> str:
    """One progress line: the top-level numbers."""
    if "error" in measured:
        return f"FAILED: {measured['error']}"
    return ", ".join(
        f"{key}={value}" for key, value in measured.items() if isinstance(value, int | float)
    )
