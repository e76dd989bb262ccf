"""The operator under test as a subprocess, observed from outside: memory and CPU from
/proc/<pid> (what the kernel charges it), progress from its Prometheus endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from prometheus_client.parser import text_string_to_metric_families

from agentfleet_dev.cluster import free_ports

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True)
class ProcStats:
    rss_mib: float  # VmRSS
    cpu_seconds: float  # utime + stime


def proc_stats(pid: int) -> ProcStats:
    rss_kib = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
    # The command name (field 2) may hold spaces; the fields after its ")" are fixed.
    stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return ProcStats(round(rss_kib / 1024, 1), (int(stat[11]) + int(stat[12])) / CLOCK_TICKS)


class OperatorProcess:
    """`agentfleet run` with a kubeconfig and extra flags; stopped with SIGTERM."""

    def __init__(self, kubeconfig: Path, log_path: Path, *args: str) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        self.metrics_port = self.health_port = 0
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 120) -> None:
        self.metrics_port, self.health_port = free_ports(2)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "agentfleet", "run",
                "--metrics-address", "127.0.0.1", "--metrics-port", str(self.metrics_port),
                "--health-address", "127.0.0.1", "--health-port", str(self.health_port),
                *self.args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.healthy():
                return
            time.sleep(0.2)
        raise RuntimeError(
            f"the operator was not healthy after {timeout:.0f} s:\n{self.log_tail()}"
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"the operator exited:\n{self.log_tail()}")

    def healthy(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.health_port}/healthz"
            with urllib.request.urlopen(url, timeout=3) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stats(self) -> ProcStats:
        return proc_stats(self.pid)

    def samples(self) -> Samples:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        out: Samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out

    def total(self, name: str, samples: Samples | None = None) -> float:
        samples = self.samples() if samples is None else samples
        return sum(v for (metric, _), v in samples.items() if metric == name)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log:
            self._log.close()
            self._log = None


def histogram_quantile(samples: Samples, name: str, q: float) -> float | None:
    """Prometheus' histogram_quantile over a `<name>_bucket` summed over its other labels
    (linear inside the bucket; the upper bound of the last finite bucket at most)."""
    buckets: dict[float, float] = {}
    for (metric, labels), value in samples.items():
        if metric == f"{name}_bucket":
            le = float(dict(labels)["le"])
            buckets[le] = buckets.get(le, 0.0) + value
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total == 0:
        return None
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return previous_bound
            inside = (rank - previous_count) / max(count - previous_count, 1e-9)
            return previous_bound + (bound - previous_bound) * inside
        previous_bound, previous_count = bound, count
    return previous_bound
