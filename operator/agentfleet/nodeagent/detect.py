"""What this machine offers: CPUs, memory, disk and GPUs (with VRAM in use, through NVML).

The node agent runs this on every node; the placement ledger reads the result from Node
labels. Probes are injectable so detection is tested without a GPU, and no failure to see a
GPU ever crashes the agent: it becomes a note, and "unknown" stays distinct from "none".

    python -m agentfleet.nodeagent.detect      # prints the detection as JSON
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)
MIB = 2**20
GIB = 2**30


@dataclass(frozen=True)
class GPUInfo:
    """One GPU as NVML reports it. An unhealthy GPU (NVML lost it) keeps its index so the
    others keep theirs; placement treats it as full."""

    index: int
    name: str
    uuid: str
    memory_mib: int
    used_mib: int
    healthy: bool = True


@dataclass(frozen=True)
class Capabilities:
    cpus: int
    memory_mib: int
    disk_gib: int
    os: str
    arch: str
    gpus: tuple[GPUInfo, ...] | None  # None: could not look (no NVML), not "no GPUs"
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["gpus"] = None if self.gpus is None else [asdict(g) for g in self.gpus]
        data["notes"] = list(self.notes)
        return data


class HostProbe(Protocol):
    def cpu_count(self) -> int | None: ...

    def memory_bytes(self) -> int: ...

    def disk_bytes(self, path: str) -> int: ...


class GPUProbe(Protocol):
    def gpus(self) -> tuple[list[GPUInfo] | None, list[str]]:
        """(GPUs, notes); GPUs is None when they cannot be seen at all."""
        ...


class PsutilHost:
    """CPUs, memory and disk of the machine through psutil."""

    def cpu_count(self) -> int | None:
        import psutil

        return psutil.cpu_count(logical=True)

    def memory_bytes(self) -> int:
        import psutil

        return int(psutil.virtual_memory().total)

    def disk_bytes(self, path: str) -> int:
        import psutil

        return int(psutil.disk_usage(path).total)


class NvmlGPUs:
    """NVIDIA GPUs through NVML (the `pynvml` module of `nvidia-ml-py`).

    NVML stays initialised between calls (init is slow on big machines) and is initialised
    again after an error, e.g. after a driver reload. `nvml` is the module, injectable."""

    def __init__(self, nvml: Any = None) -> None:
        self._nvml = nvml
        self._ready = False

    def _module(self) -> Any:
        if self._nvml is None:
            import pynvml  # type: ignore[import-untyped]

            self._nvml = pynvml
        return self._nvml

    def gpus(self) -> tuple[list[GPUInfo] | None, list[str]]:
        try:
            nvml = self._module()
        except ImportError as error:
            return None, [f"NVML is not available ({error}): GPUs not detected"]
        error_type = getattr(nvml, "NVMLError", Exception)
        try:
            if not self._ready:
                nvml.nvmlInit()
                self._ready = True
            count = int(nvml.nvmlDeviceGetCount())
        except error_type as error:
            self.close()
            return None, [f"NVML could not start ({_describe(error)}): GPUs not detected"]
        found, notes = [], []
        for index in range(count):
            try:
                found.append(_read_gpu(nvml, index))
            except error_type as error:
                notes.append(f"GPU {index}: NVML error ({_describe(error)}); counted as full")
                found.append(GPUInfo(index, "unknown", "", 0, 0, healthy=False))
        return found, notes

    def close(self) -> None:
        if self._ready:
            nvml = self._module()
            try:
                nvml.nvmlShutdown()
            except getattr(nvml, "NVMLError", Exception) as error:
                log.debug("nvmlShutdown: %s", error)  # shutting down: nothing left to save
        self._ready = False


def _read_gpu(nvml: Any, index: int) -> GPUInfo:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    return GPUInfo(
        index=index,
        name=_text(nvml.nvmlDeviceGetName(handle)),
        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
        memory_mib=int(memory.total) // MIB,  # GPU Feature Discovery's gpu.memory rounding
        used_mib=-(-int(memory.used) // MIB),  # rounded up: never under-report what is used
    )


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__


def detect(
    host: HostProbe | None = None, gpus: GPUProbe | None = None, disk_path: str = "/"
) -> Capabilities:
    """Everything the node agent publishes, from the given probes (psutil and NVML)."""
    host = host or PsutilHost()
    gpu_probe = gpus or NvmlGPUs()
    notes: list[str] = []
    cpus = host.cpu_count()
    if not cpus:
        notes.append("CPU count unknown")
    try:
        disk = host.disk_bytes(disk_path) // GIB
    except OSError as error:
        disk = 0
        notes.append(f"disk size of {disk_path} unknown ({error})")
    found, gpu_notes = gpu_probe.gpus()
    notes += gpu_notes
    if found is not None and not found:
        notes.append("no NVIDIA GPU found")
    return Capabilities(
        cpus=cpus or 0,
        memory_mib=host.memory_bytes() // MIB,
        disk_gib=disk,
        os=platform.system().lower(),
        arch=platform.machine(),
        gpus=None if found is None else tuple(sorted(found, key=lambda g: g.index)),
        notes=tuple(notes),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print this machine's detection as JSON (for a quick look on a GPU machine)."""
    args = list(sys.argv[1:] if argv is None else argv)
    disk_path = args[0] if args else os.environ.get("AGENTFLEET_DISK_PATH", "/")
    print(json.dumps(detect(disk_path=disk_path).to_json(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
