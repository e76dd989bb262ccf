"""`make image`: the operator's OCI image, built without a Docker engine.

Two layers, assembled by buildah (vfs storage, private to this build, chroot isolation):
1. the Debian base from `image/debian.py` (python3.11 and the libraries it loads);
2. /opt/agentfleet, a virtualenv holding exactly the wheels locked in requirements/operator.txt
   (hash-checked) plus the agentfleet wheel. pip runs inside the image under the image's own
   python3.11, from a read-only bind mount, so it is not left behind.
The result is an OCI archive, `_output/agentfleet-operator-<version>.oci.tar`, which
`podman load`, `skopeo copy` or `crane push` take as it is. The Dockerfile describes the same
image for people with Docker.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from image import debian

Log = Callable[[str], None]

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "_output"
LOCK = ROOT / "requirements" / "operator.txt"
REPOSITORY = "ghcr.io/agentfleet/operator"  # as in manifests/operator/deployment.yaml
VENV = "/opt/agentfleet"
USER = f"{debian.NONROOT_UID}:{debian.NONROOT_UID}"
ENTRYPOINT = ["agentfleet"]
CMD = ["run"]
PORTS = (8080, 8081)  # `agentfleet run` defaults: metrics, health (/healthz)
# The image's interpreter: CPython 3.11 on glibc 2.36, so manylinux wheels up to 2.36 fit.
WHEEL_TAGS = [
    "--python-version=3.11", "--implementation=cp", "--abi=cp311", "--abi=abi3",
    *(f"--platform=manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)),
    *(f"--platform={legacy}_x86_64" for legacy in ("manylinux2014", "manylinux2010", "manylinux1")),
]  # fmt: skip
PATH = f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin"
CONTEXT = "/tmp/context"  # where the wheels and pip are mounted while installing
# The operator's sources, copied to a clean directory so the wheel holds nothing else.
WHEEL_SOURCES = ("pyproject.toml", "README.md", "operator/agentfleet")


class ImageBuildError(RuntimeError):
    """A build step failed; the message names the step and shows the tool's last output."""


def _run(cmd: Sequence[str], what: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise ImageBuildError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    return proc.stdout.strip()


def project() -> dict[str, str]:
    """name, version, description and license from pyproject.toml."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {key: str(meta[key]) for key in ("name", "version", "description", "license")}


def archive_path(version: str) -> Path:
    return OUTPUT / f"agentfleet-operator-{version}.oci.tar"


def _revision() -> str:
    """The commit, with `-dirty` when the operator's sources differ from it."""
    if not (ROOT / ".git").exists() or not shutil.which("git"):
        return "unknown"
    sha = _run(["git", "rev-parse", "HEAD"], "git rev-parse", cwd=ROOT)
    status = _run(
        ["git", "status", "--porcelain", "--", *WHEEL_SOURCES, str(LOCK.relative_to(ROOT))],
        "git status",
        cwd=ROOT,
    )
    return f"{sha}-dirty" if status else sha


def locked_wheels(log: Log) -> Path:
    """Download (once: the directory is a cache) a wheel for every pin of the lock file,
    checked against its hashes. Binary wheels only: nothing is compiled on this machine."""
    wheels = debian.cache_root() / "image-wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    log(f"wheels: {LOCK.relative_to(ROOT)} -> {wheels}")
    _run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--require-hashes", "--no-deps", "--only-binary=:all:", *WHEEL_TAGS,
         "--dest", str(wheels), "-r", str(LOCK)],
        "pip download",
    )  # fmt: skip
    return wheels


def operator_wheel(work: Path, log: Log) -> Path:
    """The agentfleet wheel (`operator/agentfleet` only: the dev tools never go in)."""
    source, dist = work / "src", work / "dist"
    for path in WHEEL_SOURCES:
        origin, target = ROOT / path, source / path
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)
    log("wheels: building the agentfleet wheel")
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--wheel-dir", str(dist), str(source)],
        "pip wheel",
    )  # fmt: skip
    (wheel,) = dist.glob("agentfleet-*.whl")
    return wheel


def _context(work: Path, wheels: Path, wheel: Path) -> Path:
    """One directory to mount read-only while installing: pip itself, the wheels, the lock."""
    context = work / "context"
    import pip  # the build's own pip; pure Python, runs under the image's interpreter

    shutil.copytree(Path(pip.__file__).parent, context / "pip")
    (context / "wheels").mkdir()
    for source in [*wheels.glob("*.whl"), wheel]:
        shutil.copy2(source, context / "wheels" / source.name)
    shutil.copy2(LOCK, context / "operator.txt")
    return context


def remove_unmounted(path: Path) -> None:
    """rm -rf, unless something is mounted below `path` (never delete through a mount)."""
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    if any(line.split()[1].startswith(f"{path}/") for line in mounts if line.strip()):
        raise ImageBuildError(f"{path} has mounts below it; unmount them, then rebuild")
    shutil.rmtree(path, ignore_errors=True)


class Buildah:
    """buildah with a private vfs store under the work directory (no daemon, no shared state)."""

    def __init__(self, work: Path) -> None:
        self.store = work / "storage"
        self.options = ["--root", str(self.store), "--runroot", str(work / "runroot"),
                        "--storage-driver", "vfs"]  # fmt: skip

    def __call__(self, *args: str) -> str:
        return _run(["buildah", *self.options, *args], f"buildah {args[0]}")

    def run(self, container: str, *command: str, context: Path | None = None) -> str:
        mount = ["--volume", f"{context}:{CONTEXT}:ro"] if context else []
        return self(
            "run", "--isolation", "chroot", "--user", "0:0", *mount,
            "--env", f"PYTHONPATH={CONTEXT}", "--env", "PIP_NO_CACHE_DIR=1",
            "--env", "PIP_DISABLE_PIP_VERSION_CHECK=1", "--env", "PYTHONDONTWRITEBYTECODE=1",
            container, "--", *command,
        )  # fmt: skip

    def tidy(self, container: str) -> None:
        """Delete what `buildah run` leaves: the mount point of the context and the empty
        /etc/hosts, /etc/hostname, /etc/resolv.conf it bind-mounted (the runtime provides them)."""
        rootfs = Path(self("mount", container))
        try:
            for leftover in ("etc/hosts", "etc/hostname", "etc/resolv.conf"):
                (rootfs / leftover).unlink(missing_ok=True)
            (rootfs / CONTEXT.lstrip("/")).rmdir()
        finally:
            self("umount", container)


def assemble(base: Path, context: Path, out: Path, work: Path, log: Log) -> None:
    meta = project()
    buildah = Buildah(work)
    log("layer 1: the Debian base")
    base_ctr = buildah("from", "scratch")
    buildah("add", base_ctr, str(base), "/")
    buildah(
        "config", "--created-by", "image/debian.py: Debian 12 python3.11 (mmdebstrap)", base_ctr
    )
    base_image = buildah("commit", "--quiet", "--rm", base_ctr)  # unnamed: no base.name
    log("layer 2: virtualenv with the locked wheels (pip runs inside the image)")
    ctr = buildah("from", "--pull=never", base_image)
    python = f"{VENV}/bin/python"
    pip_install = [python, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps"]
    buildah.run(ctr, debian.PYTHON, "-m", "venv", "--without-pip", VENV)
    buildah.run(
        ctr, *pip_install, "--require-hashes", "--find-links", f"{CONTEXT}/wheels",
        "-r", f"{CONTEXT}/operator.txt", context=context,
    )  # fmt: skip
    wheel = next((context / "wheels").glob("agentfleet-*.whl")).name
    buildah.run(ctr, *pip_install, f"{CONTEXT}/wheels/{wheel}", context=context)
    buildah.run(ctr, python, "-m", "pip", "check", context=context)
    buildah.tidy(ctr)
    labels = {
        "org.opencontainers.image.title": "agentfleet-operator",
        "org.opencontainers.image.description": meta["description"],
        "org.opencontainers.image.version": meta["version"],
        "org.opencontainers.image.licenses": meta["license"],
        "org.opencontainers.image.revision": _revision(),
        "org.opencontainers.image.created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    buildah(
        "config", "--user", USER, "--entrypoint", json.dumps(ENTRYPOINT),
        "--cmd", json.dumps(CMD), "--env", f"PATH={PATH}", "--env", "PYTHONUNBUFFERED=1",
        *(arg for port in PORTS for arg in ("--port", f"{port}/tcp")),
        *(arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")),
        "--created-by", f"image/build.py: {VENV} (pip install --require-hashes "
        f"-r {LOCK.relative_to(ROOT)}, agentfleet {meta['version']})", ctr,
    )  # fmt: skip
    log(f"commit: {out.relative_to(ROOT)}")
    out.unlink(missing_ok=True)
    buildah(
        "commit", "--quiet", "--rm", "--format", "oci", "--disable-compression=false", ctr,
        f"oci-archive:{out}:{REPOSITORY}:{meta['version']}",
    )  # fmt: skip
    buildah("rmi", "--all")


def manifest_digest(archive: Path) -> str:
    with tarfile.open(archive) as layout:
        index = layout.extractfile("index.json")
        assert index is not None
        return str(json.load(index)["manifests"][0]["digest"])


def _check_tools(base_cached: bool) -> None:
    needed = ["buildah"] + ([] if base_cached else ["mmdebstrap", "dpkg-deb", "chroot"])
    missing = [tool for tool in needed if not shutil.which(tool)]
    if missing:
        raise ImageBuildError(
            f"missing {', '.join(missing)}: apt-get install mmdebstrap buildah (Debian 12)"
        )
    if os.geteuid() != 0:
        raise ImageBuildError("buildah's chroot isolation and mmdebstrap need root here")


def build(refresh_base: bool = False, print_line: Log = print) -> Path:
    start = time.monotonic()

    def log(message: str) -> None:  # each step with the time it started: builds share 2 cores
        print_line(f"[{time.monotonic() - start:5.1f} s] {message}")

    _check_tools(base_cached=(debian.cache_dir() / "rootfs.tar").exists() and not refresh_base)
    work = OUTPUT / "image-build"
    out = archive_path(project()["version"])
    with debian.locked(OUTPUT / ".image-build.lock"):  # one build per checkout at a time
        remove_unmounted(work)  # what a failed build left
        work.mkdir(parents=True)
        base = debian.base_rootfs(work, log, refresh=refresh_base)
        wheels = locked_wheels(log)
        context = _context(work, wheels, operator_wheel(work, log))
        assemble(base, context, out, work, log)
        remove_unmounted(work)
    size = out.stat().st_size / 2**20
    log(f"built {out.relative_to(ROOT)} ({size:.0f} MiB, {manifest_digest(out)}) "
        f"in {time.monotonic() - start:.0f} s")  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--refresh-base", action="store_true",
        help="Rebuild the cached Debian base layer (picks up Debian security updates).",
    )  # fmt: skip
    args = parser.parse_args()
    try:
        build(refresh_base=args.refresh_base)
    except (ImageBuildError, debian.BaseBuildError) as error:
        sys.exit(f"make image: {error}")


if __name__ == "__main__":
    main()
