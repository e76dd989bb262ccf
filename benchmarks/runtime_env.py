"""A Python environment with only what the shipped operator installs, to run the measured
operator from.

The dev virtualenv also holds the test and benchmark libraries, among them the synchronous
`kubernetes` client: kopf imports it whenever it is installed (its login piggybacking), and
its generated models add about 50 MiB to the operator's RSS. The image installs exactly
requirements/operator.txt, so the benchmark does too: a virtualenv under _output/ with the
hashed runtime lock and the operator package from this checkout (editable, so that the code
measured is the code of the run), rebuilt when the lock file changes.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks.kube import ROOT, BenchError

LOCK = ROOT / "requirements" / "operator.txt"
DEFAULT_DIR = ROOT / "_output" / "bench-runtime"


def python(directory: Path = DEFAULT_DIR, log: Callable[[str], None] = print) -> Path:
    """The runtime environment's interpreter, made first when missing or out of date."""
    stamp = directory / ".lock-sha256"
    wanted = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    interpreter = directory / "bin" / "python"
    if interpreter.exists() and stamp.exists() and stamp.read_text() == wanted:
        return interpreter
    log(f"making the operator's runtime-only environment in {directory}")
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(directory)],
        [str(interpreter), "-m", "pip", "install", "-q", "--require-hashes", "-r", str(LOCK)],
        [str(interpreter), "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(step[:4])} ...: {done.stderr[-2000:]}")
    stamp.write_text(wanted)
    return interpreter


def distributions(interpreter: Path) -> set[str]:
    """The distributions installed in an environment (lower-case names)."""
    listed = subprocess.run(
        [str(interpreter), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {line.split("==")[0].lower() for line in listed if "==" in line}
