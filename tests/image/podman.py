"""podman, as the image tests run it: as root with runc and the cgroupfs manager (crun refuses
this sandbox's hybrid cgroup hierarchy and there is no systemd), with a store private to one test
module (vfs: no overlay mounts to clean up), and each container in its own network namespace
(slirp4netns), so the fixed ports the chart's containers listen on never meet another process of
this machine. The host's loopback, where the local API server listens, is 10.0.2.2 inside.

Limits are set below the sandbox's hard limits, which the runtime may not raise (no
CAP_SYS_RESOURCE)."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

HOST_LOOPBACK = "10.0.2.2"  # slirp4netns's address of the host's 127.0.0.1
NETWORK = "slirp4netns:allow_host_loopback=true"


class Podman:
    def __init__(self, directory: Path) -> None:
        self.store = directory / "storage"
        self.options = [
            "--root", str(self.store), "--runroot", str(directory / "runroot"),
            "--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager", "cgroupfs",
        ]  # fmt: skip

    def __call__(self, *args: str, check: bool = True, timeout: float = 180) -> str:
        proc = subprocess.run(
            ["podman", *self.options, *args], capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {args[0]} failed: {proc.stderr[-3000:]}")
        return proc.stdout.strip()

    def logs(self, container: str) -> str:
        proc = subprocess.run(["podman", *self.options, "logs", container], capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        return proc.stdout + proc.stderr  # podman replays the container's stderr on its own

    def state(self, container: str) -> str:
        return self("inspect", "--format", "{{.State.Status}}", container, check=False)

    def uids(self, container: str) -> list[str]:
        """Real, effective, saved and filesystem uid of the container's first process."""
        pid = self("inspect", "--format", "{{.State.Pid}}", container)
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        return next(line for line in status if line.startswith("Uid:")).split()[1:]

    def load(self, archive: Path) -> str:
        """Load an OCI archive once; returns the image id to run."""
        loaded = self("load", "--quiet", "--input", str(archive), timeout=600)
        images = self("images", "--quiet", "--no-trunc").splitlines()
        assert len(images) == 1, f"{archive}: {loaded}; images in the store: {images}"
        return images[0]

    def remove_store(self) -> None:
        mounts = Path("/proc/self/mounts").read_text()
        assert f" {self.store}/" not in mounts, f"{self.store} still has mounts"
        shutil.rmtree(self.store, ignore_errors=True)


def limit(kind: int) -> str:
    hard = resource.getrlimit(kind)[1]
    value = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    return f"{value}:{value}"


ULIMITS = ("--ulimit", f"nofile={limit(resource.RLIMIT_NOFILE)}",
           "--ulimit", f"nproc={limit(resource.RLIMIT_NPROC)}")  # fmt: skip


def podman_store() -> Iterator[Podman]:
    """A private store; skips, saying why, where podman cannot run images at all."""
    missing = [tool for tool in ("podman", "runc", "slirp4netns") if not shutil.which(tool)]
    if missing:
        pytest.skip(f"cannot run the image: {', '.join(missing)} not installed (apt-get install)")
    if os.geteuid() != 0:
        pytest.skip("cannot run the image: rootless podman needs /etc/subuid ranges; run as root")
    directory = Path(tempfile.mkdtemp(prefix="af-podman-"))  # podman: runroot < 50 characters
    handle = Podman(directory)
    try:
        yield handle
    finally:
        handle("rm", "--all", "--force", "--time=0", check=False)
        handle("rmi", "--all", "--force", check=False)
        handle.remove_store()
        shutil.rmtree(directory, ignore_errors=True)
