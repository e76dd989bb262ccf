"""The image's base layer: Debian 12's python3.11 and the shared libraries it loads, nothing else.

mmdebstrap (variant `extract`) unpacks the packages that apt resolves for python3.11, without
running maintainer scripts, so no package manager is ever configured in the result. A few
dependencies exist only so that a package can be *installed* (see INSTALL_TIME_ONLY); their
packages, and whatever only they pull in, are deleted again. The base therefore holds no dpkg,
no apt, no shell and no compiler. Like distroless images, the control file of every package
that stays is written to /var/lib/dpkg/status.d/, so vulnerability scanners still see exact
Debian versions, and each package's copyright file stays.

The finished base is cached as a tarball under ~/.cache/agentfleet/image-base-<key>/, keyed by
this file's contents; `--refresh-base` re-downloads it to pick up Debian's security updates.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

Log = Callable[[str], None]

SUITE = "bookworm"  # Debian 12, whose python3.11 matches the operator's requires-python
# What the image is for: the interpreter, its standard library, Debian's base files
# (/etc/os-release for scanners, /usr/share/common-licenses that copyright files point to), and
# the C++ runtime that grpcio's manylinux wheel links against (`agentfleet api`'s gRPC server).
ROOT_PACKAGES = ("python3.11-minimal", "libpython3.11-stdlib", "base-files", "libstdc++6")
# Dependencies that only maintainer scripts use, which never run in this image:
# readline-common's `dpkg | install-info` registers its info page; base-files' `awk` edits
# /etc files on upgrades.
INSTALL_TIME_ONLY = frozenset({"dpkg", "install-info", "awk"})
PYTHON = "/usr/bin/python3.11"
NONROOT_UID = 65532  # distroless' `nonroot`; the operator's Pod runs as this user
NONROOT_HOME = "/home/nonroot"
# Documentation nobody reads in a container; /usr/share/doc/*/copyright stays.
DOC_DIRS = ("usr/share/man", "usr/share/info", "usr/share/lintian", "usr/share/bug")
# What mmdebstrap leaves for apt and dpkg, and host files it copies in (resolv.conf, hostname).
BOOTSTRAP_LEFTOVERS = (
    "etc/apt",
    "etc/fstab",
    "etc/hostname",
    "etc/resolv.conf",
    "var/cache/apt",
    "var/lib/apt",
    "var/lib/dpkg",
    "var/log/apt",
)
PASSWD = f"""root:x:0:0:root:/root:/sbin/nologin
nonroot:x:{NONROOT_UID}:{NONROOT_UID}:nonroot:{NONROOT_HOME}:/sbin/nologin
"""
GROUP = f"""root:x:0:
nonroot:x:{NONROOT_UID}:
"""
# Without this file glibc asks DNS before /etc/hosts.
NSSWITCH = """passwd: files
group: files
hosts: files dns
"""


class BaseBuildError(RuntimeError):
    """The base root filesystem could not be built; the message says which step failed."""


@dataclass(frozen=True)
class DebianPackage:
    """One downloaded .deb, as its control file describes it."""

    name: str
    version: str
    control: str  # the whole control paragraph, written to status.d for scanners
    depends: tuple[tuple[str, ...], ...]  # Pre-Depends + Depends: groups of alternatives
    provides: tuple[str, ...]
    deb: Path


_FIELD = re.compile(r"^([A-Za-z0-9-]+):[ \t]*(.*)$")


def parse_control(text: str) -> dict[str, str]:
    """RFC 822-style control paragraph -> {field: value}; continuation lines are joined."""
    fields: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and last:
            fields[last] += "\n" + line
        elif match := _FIELD.match(line):
            last = match.group(1)
            fields[last] = match.group(2)
    return fields


def parse_relations(value: str) -> tuple[tuple[str, ...], ...]:
    """`a (>= 1) | b:any [amd64], c` -> (("a", "b"), ("c",)): package names only."""
    groups = []
    for group in value.split(","):
        names = []
        for alternative in group.split("|"):
            name = re.sub(r"\(.*?\)|\[.*?\]|<.*?>", "", alternative).strip().split(":")[0]
            if name:
                names.append(name)
        if names:
            groups.append(tuple(names))
    return tuple(groups)


def package_from_control(control: str, deb: Path) -> DebianPackage:
    fields = parse_control(control)
    relations = ", ".join(v for v in (fields.get("Pre-Depends"), fields.get("Depends")) if v)
    return DebianPackage(
        name=fields["Package"],
        version=fields["Version"],
        control=control.strip() + "\n",
        depends=parse_relations(relations),
        provides=tuple(g[0] for g in parse_relations(fields.get("Provides", ""))),
        deb=deb,
    )


def runtime_closure(
    packages: Mapping[str, DebianPackage],
    roots: Iterable[str] = ROOT_PACKAGES,
    install_time_only: frozenset[str] = INSTALL_TIME_ONLY,
) -> set[str]:
    """The packages reachable from `roots` without passing through an install-time-only
    dependency. Of a group of alternatives, the one apt downloaded is followed."""
    providers: dict[str, list[str]] = {}
    for package in packages.values():
        for provided in (package.name, *package.provides):
            providers.setdefault(provided, []).append(package.name)
    keep: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        if name not in packages:
            raise BaseBuildError(f"{name} is needed but apt did not download it")
        keep.add(name)
        for group in packages[name].depends:
            if set(group) <= install_time_only:
                continue
            chosen = next((p for alt in group for p in providers.get(alt, [])), None)
            if chosen is None:
                raise BaseBuildError(f"{name} depends on {' | '.join(group)}: not downloaded")
            todo.append(chosen)
    return keep


# --- the steps --------------------------------------------------------------------------


def _run(cmd: list[str], what: str, env: Mapping[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise BaseBuildError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    return proc.stdout


def _bootstrap(rootfs: Path, debs: Path) -> None:
    """Unpack python3.11 and its dependency closure; keep the .debs to read their contents."""
    command = [
        "mmdebstrap",  # its progress goes to the error message if it fails
        "--mode=root",
        "--variant=extract",
        "--format=directory",
        f"--include={','.join(ROOT_PACKAGES)}",
        f"--extract-hook=sync-out /var/cache/apt/archives {debs}",
        SUITE,
        str(rootfs),
    ]
    # Without a mirror mmdebstrap uses Debian's, with bookworm-updates and bookworm-security.
    if mirror := os.environ.get("AGENTFLEET_DEBIAN_MIRROR"):  # a URL or a sources.list line
        command.append(mirror)
    _run(command, "mmdebstrap")


def _read_packages(debs: Path) -> dict[str, DebianPackage]:
    packages = {}
    for deb in sorted(debs.glob("*.deb")):
        package = package_from_control(_run(["dpkg-deb", "--field", str(deb)], "dpkg-deb"), deb)
        packages[package.name] = package
    return packages


def _deb_paths(deb: Path) -> list[tuple[str, bool]]:
    """(path relative to /, is a directory) for every entry of the package's data."""
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as p:
        assert p.stdout is not None
        with tarfile.open(fileobj=p.stdout, mode="r|") as data:
            entries = [(m.name.removeprefix("./").rstrip("/"), m.isdir()) for m in data]
    if p.returncode != 0:
        raise BaseBuildError(f"dpkg-deb could not read {deb.name}")
    return [(path, is_dir) for path, is_dir in entries if path]


def _remove_package(rootfs: Path, package: DebianPackage) -> int:
    """Delete the package's files, then those of its directories that are now empty."""
    removed = 0
    directories = []
    for path, is_dir in _deb_paths(package.deb):
        target = rootfs / path
        if is_dir:
            directories.append(target)
        elif target.is_symlink() or target.exists():
            target.unlink()
            removed += 1
    for directory in sorted(directories, key=lambda d: len(d.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty: another package's files live there
            directory.rmdir()
    return removed


def _remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.is_symlink() or path.exists():  # files, links, device nodes
        path.unlink()


def _trim_documentation(rootfs: Path) -> None:
    for directory in DOC_DIRS:
        _remove_tree(rootfs / directory)
    for path in sorted((rootfs / "usr/share/doc").glob("*/*")):
        if path.name != "copyright":
            _remove_tree(path)


def _configure(rootfs: Path, kept: Iterable[DebianPackage]) -> None:
    """What dpkg and base-passwd would have written, reduced to what a container needs."""
    for leftover in BOOTSTRAP_LEFTOVERS:
        _remove_tree(rootfs / leftover)
    for node in (rootfs / "dev").iterdir():  # the container runtime provides /dev
        _remove_tree(node)
    status = rootfs / "var/lib/dpkg/status.d"
    status.mkdir(parents=True)
    for package in kept:
        (status / package.name).write_text(package.control)
    (rootfs / "etc/passwd").write_text(PASSWD)
    (rootfs / "etc/group").write_text(GROUP)
    (rootfs / "etc/nsswitch.conf").write_text(NSSWITCH)
    for directory, owner, mode in (("root", 0, 0o700), (NONROOT_HOME[1:], NONROOT_UID, 0o700)):
        path = rootfs / directory
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, owner, owner)
        path.chmod(mode)
    (rootfs / "tmp").chmod(0o1777)


def _compile_stdlib(rootfs: Path) -> None:
    """What python3.11's postinst does: byte-compile the standard library once, at build time,
    so the operator starts fast on a read-only root filesystem."""
    _run(
        ["chroot", str(rootfs), PYTHON, "-m", "compileall", "-q", "/usr/lib/python3.11"],
        "byte-compiling the standard library",
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
    )


def _tar(rootfs: Path, tarball: Path) -> None:
    _run(
        ["tar", "--create", "--file", str(tarball), "--directory", str(rootfs), "--sort=name",
         "--numeric-owner", "."],
        "tar",
    )  # fmt: skip


def cache_root() -> Path:
    if explicit := os.environ.get("AGENTFLEET_CACHE"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "agentfleet"


def cache_dir() -> Path:
    """One directory per version of this recipe: any change here builds a new base."""
    key = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    return cache_root() / f"image-base-{SUITE}-{key}"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if needed); a second caller waits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def base_rootfs(work: Path, log: Log = print, refresh: bool = False) -> Path:
    """The base layer as a tarball (built once, then cached). Needs root and mmdebstrap."""
    cached = cache_dir()
    tarball = cached / "rootfs.tar"
    with locked(cache_root() / ".image-base.lock"):
        if tarball.exists() and not refresh:
            log(f"base layer: cached {tarball}")
            return tarball
        if os.geteuid() != 0:
            raise BaseBuildError("building the base layer needs root (mmdebstrap, chroot)")
        rootfs, debs = work / "base-rootfs", work / "base-debs"
        for scratch in (rootfs, debs):
            _remove_tree(scratch)
        debs.mkdir(parents=True)
        log(f"base layer: mmdebstrap {SUITE} {' '.join(ROOT_PACKAGES)}")
        _bootstrap(rootfs, debs)
        packages = _read_packages(debs)
        keep = runtime_closure(packages)
        for name in sorted(set(packages) - keep):
            log(f"base layer: dropping {name} ({_remove_package(rootfs, packages[name])} files)")
        _trim_documentation(rootfs)
        kept = [packages[name] for name in sorted(keep)]
        _configure(rootfs, kept)
        _compile_stdlib(rootfs)
        staging = cached.with_name(cached.name + ".partial")
        _remove_tree(staging)
        staging.mkdir(parents=True)
        _tar(rootfs, staging / "rootfs.tar")
        (staging / "packages.txt").write_text("".join(f"{p.name} {p.version}\n" for p in kept))
        _remove_tree(cached)
        staging.rename(cached)
        shutil.rmtree(rootfs)
        shutil.rmtree(debs)
        log(f"base layer: {len(kept)} Debian packages -> {tarball}")
        return tarball
