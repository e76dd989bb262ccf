"""The operator under test: a subprocess, observed from outside.

Memory and CPU come from /proc/<pid> (what the kernel charges the process), progress from
the operator's Prometheus endpoint (controller-runtime's metric names), so the harness keeps
working while the operator's internals change.
"""

from __future__ import annotations

import bisect
import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from prometheus_client.parser import text_string_to_metric_families

from agentfleet_dev.cluster import free_ports
from benchmarks.kube import BenchError

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MIB = 2**20


@dataclass(frozen=True)
class ProcStats:
    rss_mib: float  # VmRSS
    peak_rss_mib: float  # VmHWM: the most the process ever held
    cpu_seconds: float  # utime + stime

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


class Sampler:
    """/proc of one process every `interval` seconds on a thread, so that a moment known
    only later (the audit finds when the fleet converged) still has its CPU and memory."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.times: list[float] = []
        self.samples: list[ProcStats] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proc-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                sample = proc_stats(self.pid)
            except (OSError, KeyError):
                return  # the process is gone
            self.times.append(time.monotonic())
            self.samples.append(sample)
            self._stopped.wait(self.interval)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def at(self, moment: float) -> ProcStats | None:
        """The first sample at or after `moment` (the last one if none is later)."""
        if not self.samples:
            return None
        index = min(bisect.bisect_left(self.times, moment), len(self.samples) - 1)
        return self.samples[index]


def proc_stats(pid: int) -> ProcStats:
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024 / MIB  # reported in kB
    # The command name in field 2 may hold spaces; the fields after its ")" are fixed.
    stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    utime, stime = int(stat[11]), int(stat[12])  # fields 14 and 15 of proc(5)
    return ProcStats(
        round(fields["VmRSS"], 1), round(fields["VmHWM"], 1), (utime + stime) / CLOCK_TICKS
    )


@dataclass(frozen=True)
class Progress:
    """What the operator's metrics say about its work queue."""

    depth: float  # workqueue_depth
    adds: float  # workqueue_adds_total
    reconciles: float  # controller_runtime_reconcile_total, every result
    writes: float  # agentfleet_api_writes_total


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        workers: int | None = None,
        args: tuple[str, ...] = (),
        python: str = "",
    ) -> None:
        self.python = python or sys.executable  # see benchmarks/runtime_env.py
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.workers = workers
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        self.metrics_port = self.health_port = 0
        self.sampler: Sampler | None = None
        self.started_at = 0.0
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise BenchError("the operator is not running")
        return self.process.pid

    def start(self, timeout: float = 120) -> float:
        """Start the operator and wait for /healthz and /metrics; seconds it took."""
        self.metrics_port, self.health_port = free_ports(2)
        command = [
            self.python,
            "-m",
            "agentfleet",
            "run",
            "--metrics-address",
            "127.0.0.1",
            "--metrics-port",
            str(self.metrics_port),
            "--health-port",
            str(self.health_port),
            *(["--workers", str(self.workers)] if self.workers else []),
            *self.args,
        ]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in _reap)
        started = self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
        )
        self.sampler = Sampler(self.process.pid)
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"the operator exited at start:\n{self.log_tail()}")
            if self._healthy():
                try:
                    self.progress()
                    return time.monotonic() - started
                except OSError:
                    pass
            time.sleep(0.1)
        raise BenchError(f"the operator did not become healthy in {timeout:.0f} s")

    def _healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.health_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self, timeout: float = 60) -> float:
        """SIGTERM, as Kubernetes stops a Pod; seconds until the process exited."""
        process = self._running()
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise BenchError(f"the operator ignored SIGTERM for {timeout:.0f} s") from None
        finally:
            self._reap()
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a node dies or the OOM killer strikes."""
        process = self._running()
        process.kill()
        process.wait()
        self._reap()

    def close(self) -> None:
        """Stop it if it runs, whatever state it is in (SIGKILL after 30 s)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reap()

    def _running(self) -> subprocess.Popen[bytes]:
        if self.process is None or self.process.poll() is not None:
            raise BenchError(f"the operator is not running:\n{self.log_tail()}")
        return self.process

    def _reap(self) -> None:
        self.process = None
        if self.sampler:
            self.sampler.stop()
        if self._log:
            self._log.close()
            self._log = None

    def stats(self) -> ProcStats:
        return proc_stats(self.pid)

    def stats_at(self, moment: float) -> ProcStats:
        """The process as it was at `moment` (sampled), or now."""
        sampled = self.sampler.at(moment) if self.sampler else None
        return sampled or self.stats()

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def metrics(self) -> dict[str, float]:
        """Each sample name summed over its labels."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        totals: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
        return totals

    def quantile(self, histogram: str, q: float) -> float | None:
        """The q-quantile of one of the operator's histograms (all labels together), as
        Prometheus' histogram_quantile estimates it: linear within the bucket."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        buckets: dict[float, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == f"{histogram}_bucket":
                    bound = float(sample.labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + sample.value
        return histogram_quantile(q, sorted(buckets.items()))

    def progress(self) -> Progress:
        m = self.metrics()
        return Progress(
            depth=m.get("workqueue_depth", 0.0),
            adds=m.get("workqueue_adds_total", 0.0),
            reconciles=m.get("controller_runtime_reconcile_total", 0.0),
            writes=m.get("agentfleet_api_writes_total", 0.0),
        )

    def writes(self) -> int:
        return round(self.progress().writes)

    def wait_idle(self, quiet: float, seen_at_least: int = 0, timeout: float = 600) -> float:
        """Wait until the work queue is empty and no reconcile ran for `quiet` seconds, after
        at least `seen_at_least` agents were queued or reconciled (so an operator still
        listing is not taken for an idle one). Returns the monotonic time the quiet began.

        Periodic resyncs of a long-running operator can keep reconciles trickling forever;
        so an empty queue with no write for four quiet periods counts as idle too."""
        deadline = time.monotonic() + timeout
        last: tuple[float, float] | None = None
        last_writes: float | None = None
        changed = wrote = time.monotonic()
        while time.monotonic() < deadline:
            self._running()
            now = time.monotonic()
            try:
                p = self.progress()
            except OSError:
                time.sleep(0.25)
                continue
            if p.depth > 0 or p.writes != last_writes:
                wrote = now
            if p.depth > 0 or (p.adds, p.reconciles) != last:
                changed = now
            last, last_writes = (p.adds, p.reconciles), p.writes
            if max(p.adds, p.reconciles) >= seen_at_least:
                if now - changed >= quiet:
                    return changed
                if now - wrote >= 4 * quiet:
                    return wrote
            time.sleep(0.25)
        raise BenchError(
            f"not idle {timeout:.0f} s after the start (idle: {seen_at_least:,}+ agents queued "
            f"or reconciled, an empty queue, {quiet:g} s without a reconcile); {self._describe()}"
        )

    def _describe(self) -> str:
        try:
            p = self.progress()
        except OSError as error:
            return f"metrics unreadable: {error}"
        return (
            f"workqueue_adds_total {p.adds:.0f}, workqueue_depth {p.depth:.0f}, "
            f"controller_runtime_reconcile_total {p.reconciles:.0f}"
        )


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' estimate from cumulative (upper bound, count) buckets, sorted by bound:
    the bucket holding rank q * total, interpolated linearly; None without observations."""
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # above the last finite bucket: its bound, as Prometheus
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return buckets[-1][0]
