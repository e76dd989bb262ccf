"""The README's benchmark table is exactly what the committed result files give."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from benchmarks import readme, report


def test_the_readme_table_is_the_committed_result_files() -> None:
    in_readme = readme.in_readme(readme.README.read_text())
    assert in_readme == readme.table(), "run `python -m benchmarks.readme --write`"


def result(agents: int, date: str, value: float) -> dict[str, Any]:
    row = report.Row("1. created", "all converged", value, "s", "≤ 1.3 baseline", True, 1.1)
    return {
        "meta": {"commit": "abc1234", "date": date, "machine": {"cpus": 2}},
        "config": {"agents": agents, "clients": 8, "qps": 200},
        "rows": [row.as_dict()],
        "cost": [],
    }


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_only_committed_files_count_and_the_newest_of_each_kind_wins(tmp_path: Path) -> None:
    results = tmp_path / readme.RESULTS
    results.mkdir(parents=True)
    git(tmp_path, "init", "-q")
    assert readme.table(tmp_path) == readme.NONE_YET
    files = {
        "old.json": result(1000, "2026-12-01T00:00:00Z", 70.0),
        "new.json": result(1000, "2026-12-02T00:00:00Z", 60.0),
        "big.json": result(10000, "2026-12-01T00:00:00Z", 900.0),
        "local.json": result(1000, "2026-12-03T00:00:00Z", 1.0),  # on disk, never added
    }
    for name, data in files.items():
        (results / name).write_text(json.dumps(data))
    git(tmp_path, "add", f"{readme.RESULTS}/old.json", f"{readme.RESULTS}/new.json")
    git(tmp_path, "add", f"{readme.RESULTS}/big.json")
    table = readme.table(tmp_path)
    assert "| 60 s |" in table and "| 900 s |" in table
    assert "| 70 s |" not in table and "| 1 s |" not in table
    assert f"[new.json]({readme.RESULTS}/new.json)" in table
    assert table.index("**1,000 agents**") < table.index("**10,000 agents**")
