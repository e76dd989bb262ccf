"""Detection with injected probes: a fake NVML module and a fake host."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest

from agentfleet.nodeagent.detect import Capabilities, GPUInfo, NvmlGPUs, detect

MIB = 2**20


class NVMLError(Exception):
    """What pynvml raises (its errors all derive from pynvml.NVMLError)."""


@dataclass
class Memory:
    total: int
    used: int
    free: int = 0


@dataclass
class FakeNvml:
    """The part of pynvml the probe uses. `boards` is (name, uuid, total bytes, used bytes);
    a board that is an exception makes every call on that GPU raise it."""

    boards: list[tuple[Any, Any, int, int] | Exception] = field(default_factory=list)
    init_error: Exception | None = None
    inits: int = 0
    shutdowns: int = 0
    NVMLError: type[Exception] = NVMLError

    def nvmlInit(self) -> None:  # pynvml's names
        self.inits += 1
        if self.init_error is not None:
            raise self.init_error

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.boards)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        board = self.boards[index]
        if isinstance(board, Exception):
            raise board
        return index

    def _board(self, handle: int) -> tuple[Any, Any, int, int]:
        board = self.boards[handle]
        assert not isinstance(board, Exception)
        return board

    def nvmlDeviceGetName(self, handle: int) -> Any:
        return self._board(handle)[0]

    def nvmlDeviceGetUUID(self, handle: int) -> Any:
        return self._board(handle)[1]

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Memory:
        _, _, total, used = self._board(handle)
        return Memory(total, used, total - used)


@dataclass
class FakeHost:
    cpus: int | None = 16
    memory: int = 64 * 2**30
    disk: int | OSError = 500 * 2**30

    def cpu_count(self) -> int | None:
        return self.cpus

    def memory_bytes(self) -> int:
        return self.memory

    def disk_bytes(self, path: str) -> int:
        if isinstance(self.disk, OSError):
            raise self.disk
        return self.disk


H100 = ("NVIDIA H100 80GB HBM3", "GPU-aaaa", 81559 * MIB + 123, 512 * MIB + 1)
L4 = (b"NVIDIA L4", b"GPU-bbbb", 23034 * MIB, 0)


def test_mixed_gpus_with_names_uuids_and_vram_in_mib() -> None:
    caps = detect(FakeHost(), NvmlGPUs(FakeNvml([H100, L4])))
    assert caps.gpus == (
        GPUInfo(0, "NVIDIA H100 80GB HBM3", "GPU-aaaa", 81559, 513),  # used rounds up
        GPUInfo(1, "NVIDIA L4", "GPU-bbbb", 23034, 0),  # older pynvml returns bytes
    )
    assert (caps.cpus, caps.memory_mib, caps.disk_gib) == (16, 65536, 500)
    assert caps.notes == ()


def test_no_gpu_is_zero_gpus_with_a_note() -> None:
    caps = detect(FakeHost(), NvmlGPUs(FakeNvml([])))
    assert caps.gpus == ()
    assert caps.notes == ("no NVIDIA GPU found",)


def test_no_driver_is_unknown_not_zero() -> None:
    nvml = FakeNvml([H100], init_error=NVMLError("NVML Shared Library Not Found"))
    caps = detect(FakeHost(), NvmlGPUs(nvml))
    assert caps.gpus is None
    assert caps.notes == (
        "NVML could not start (NVML Shared Library Not Found): GPUs not detected",
    )


def test_nvml_is_initialised_once_and_again_after_a_failure() -> None:
    nvml = FakeNvml([L4], init_error=NVMLError("Driver Not Loaded"))
    probe = NvmlGPUs(nvml)
    assert probe.gpus()[0] is None
    nvml.init_error = None  # the driver came back
    assert probe.gpus()[0] == [GPUInfo(0, "NVIDIA L4", "GPU-bbbb", 23034, 0)]
    probe.gpus()
    assert nvml.inits == 2
    probe.close()
    assert nvml.shutdowns == 1


def test_a_lost_gpu_keeps_its_index_and_is_unhealthy() -> None:
    caps = detect(FakeHost(), NvmlGPUs(FakeNvml([H100, NVMLError("GPU is lost"), L4])))
    assert caps.gpus is not None
    assert [(g.index, g.healthy) for g in caps.gpus] == [(0, True), (1, False), (2, True)]
    assert caps.notes == ("GPU 1: NVML error (GPU is lost); counted as full",)


def test_host_problems_are_notes() -> None:
    caps = detect(FakeHost(cpus=None, disk=OSError("no such mount")), NvmlGPUs(FakeNvml([])))
    assert (caps.cpus, caps.disk_gib) == (0, 0)
    assert "CPU count unknown" in caps.notes
    assert "disk size of / unknown (no such mount)" in caps.notes


def test_real_probes_never_crash() -> None:
    """On this machine: psutil for real, and NVML for real (no driver here: unknown)."""
    caps = detect()
    assert caps.cpus >= 1 and caps.memory_mib > 0
    assert caps.gpus is None or all(g.memory_mib > 0 for g in caps.gpus)
    if caps.gpus is None:
        assert any("GPUs not detected" in note for note in caps.notes)


def test_module_prints_the_detection_as_json() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agentfleet.nodeagent.detect"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    data = json.loads(result.stdout)
    assert set(data) == set(Capabilities.__dataclass_fields__)
    assert data["cpus"] >= 1


@pytest.mark.parametrize("gpus", [None, ()])
def test_to_json_keeps_unknown_and_none_apart(gpus: tuple[GPUInfo, ...] | None) -> None:
    caps = Capabilities(1, 2, 3, "linux", "x86_64", gpus)
    assert caps.to_json()["gpus"] == (None if gpus is None else [])
