"""The local control plane's own processes, so a window can say what the cluster spent.

When the cluster is the project's local control plane (`agentfleet dev cluster up`, or the
one the harness starts), its processes are ours to observe: `state.json` beside the
kubeconfig names their pids, and /proc says how much CPU each has used. The difference
between two readings is what kube-apiserver, etcd, the controller-manager, the scheduler,
kwok (and KEDA, when it runs) spent in a window; together with the requests the API server
counted, it shows what one write costs the cluster. A borrowed cluster has no such file:
the readings are empty and the tables say so.
"""

from __future__ import annotations

import os
from pathlib import Path

from agentfleet_dev.cluster import ClusterState

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included), in seconds."""
    # The command name in field 2 may hold spaces; the fields after its ")" are fixed.
    stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(stat[11]) + int(stat[12])) / CLOCK_TICKS  # fields 14 and 15 of proc(5)


def processes(kubeconfig: Path) -> dict[str, int]:
    """Name -> pid of the live processes of the local control plane whose kubeconfig this
    is; {} for any other cluster."""
    state = ClusterState.load(kubeconfig.resolve().parent)
    if state is None or Path(state.kubeconfig).resolve() != kubeconfig.resolve():
        return {}
    return {name: proc.pid for name, proc in state.processes.items() if proc.alive()}


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process (a vanished one is left out)."""
    used = {}
    for name, pid in pids.items():
        try:
            used[name] = process_cpu_seconds(pid)
        except (OSError, IndexError, ValueError):
            continue
    return used
