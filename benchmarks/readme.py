"""The README's benchmark table, made only from the result files committed in git.

    python -m benchmarks.readme           # print the table
    python -m benchmarks.readme --write   # put it into README.md between its markers

For each kind of run (the main benchmark at each fleet size, the mesh growth) the newest
committed result file gives its rows, each row linking that file. A unit test fails when the
README's table is not what this prints, so a number in it can only come from a committed file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks import report

# ruff: noqa: RUF001  (markdown for people: the dash is meant)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = "benchmarks/results"
README = ROOT / "README.md"
BEGIN = (
    "<!-- benchmark table: `python -m benchmarks.readme --write` makes it from the result files "
    "committed in benchmarks/results/; tests/unit/test_bench_readme.py checks it -->"
)
END = "<!-- end of the benchmark table -->"
NONE_YET = (
    "No result file is committed yet: `make bench` (and `make bench-10k`, `make bench-mesh-10k`) "
    f"write them to `{RESULTS}/`; commit them, then `python -m benchmarks.readme --write`."
)


def committed(root: Path = ROOT) -> list[str]:
    """Result files in git's index (not merely on disk), relative to the repository."""
    listed = subprocess.run(
        ["git", "ls-files", "--", f"{RESULTS}/*.json"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(listed)


def kind(result: dict[str, Any]) -> tuple[int, str]:
    """What a result measured: its fleet size, and whether it is the main run or the mesh
    growth (a file of each kind is shown)."""
    config = result["config"]
    if config.get("main", True):
        return (config["agents"], "main")
    if config.get("mesh_growth"):
        return (max(config["mesh_growth"]), "mesh growth")
    return (config["agents"], "later rows")


def newest(files: dict[str, dict[str, Any]]) -> dict[tuple[int, str], str]:
    """The newest file of each kind."""
    chosen: dict[tuple[int, str], str] = {}
    for path, result in sorted(files.items(), key=lambda item: item[1]["meta"]["date"]):
        chosen[kind(result)] = path
    return chosen


def describe(path: str, result: dict[str, Any]) -> str:
    meta, config = result["meta"], result["config"]
    machine = meta.get("machine") or {}
    loads = meta.get("load_average_at_start") or []
    runs = len(result.get("runs") or [result])
    size, what = kind(result)
    title = f"{size:,} agents" if what == "main" else f"{what}, up to {size:,} agents"
    return (
        f"**{title}** ([{path.rpartition('/')[2]}]({path})): commit {meta['commit']}"
        f"{' with uncommitted changes' if meta.get('uncommitted_changes') else ''}, "
        f"{meta['date']}, {machine.get('cpu_model', '?')}, {machine.get('cpus', '?')} CPUs, "
        f"{machine.get('memory_gib', '?')} GiB, load {loads[0] if loads else '?'} at the start; "
        f"{'median of ' + str(runs) + ' runs (min–max)' if runs > 1 else 'one run'}, "
        f"{config.get('clients', '?')} clients at {config.get('qps', '?')} QPS for the baseline."
    )


def table(root: Path = ROOT) -> str:
    """The README's benchmark section body, from the committed result files."""
    paths = committed(root)
    if not paths:
        return NONE_YET
    files = {path: json.loads((root / path).read_text()) for path in paths}
    parts = []
    for key in sorted(newest(files)):
        path = newest(files)[key]
        result = files[path]
        rows = [report.Row.of(row) for row in result["rows"]]
        parts += [describe(path, result), "", report.markdown(rows, link=path), ""]
        costs = [report.CostRow(**row) for row in result.get("cost") or []]
        if costs:
            parts += [
                "What the control plane spent per window, the operator's side and the "
                "baseline's (median of the runs):",
                "",
                report.cost_markdown(costs),
                "",
            ]
    return "\n".join(parts).rstrip()


def in_readme(text: str) -> str:
    """The table as the README holds it (between the markers)."""
    if BEGIN not in text or END not in text:
        raise ValueError("README.md has no benchmark table markers")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def write(root: Path = ROOT) -> None:
    readme = root / "README.md"
    text = readme.read_text()
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    readme.write_text(f"{before}{BEGIN}\n{table(root)}\n{END}{after}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.readme", description=__doc__)
    parser.add_argument("--write", action="store_true", help="update README.md in place")
    args = parser.parse_args(argv)
    if args.write:
        write()
    else:
        sys.stdout.write(table() + "\n")


if __name__ == "__main__":
    main()
