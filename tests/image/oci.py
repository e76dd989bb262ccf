"""Read an OCI image archive the way a container runtime does: index -> manifest -> config and
layers, applied in order with whiteouts, so tests see the filesystem a container starts with."""

from __future__ import annotations

import functools
import json
import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Entry:
    """One path of the container's filesystem and the layer that last wrote it."""

    info: tarfile.TarInfo
    layer: int


class OciArchive:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _blob(self, layout: tarfile.TarFile, digest: str) -> bytes:
        member = layout.extractfile(f"blobs/{digest.replace(':', '/')}")
        assert member is not None, f"{digest} is not a file in {self.path}"
        return member.read()

    @functools.cached_property
    def index(self) -> dict[str, Any]:
        with tarfile.open(self.path) as layout:
            member = layout.extractfile("index.json")
            assert member is not None
            index: dict[str, Any] = json.load(member)
        return index

    @functools.cached_property
    def manifest(self) -> dict[str, Any]:
        (descriptor,) = self.index["manifests"]
        with tarfile.open(self.path) as layout:
            manifest: dict[str, Any] = json.loads(self._blob(layout, descriptor["digest"]))
        return manifest

    @functools.cached_property
    def config(self) -> dict[str, Any]:
        with tarfile.open(self.path) as layout:
            config: dict[str, Any] = json.loads(
                self._blob(layout, self.manifest["config"]["digest"])
            )
        return config

    @functools.cached_property
    def files(self) -> dict[str, Entry]:
        """Normalised path ("usr/bin/python3.11") -> entry, after every layer and whiteout."""
        files: dict[str, Entry] = {}
        with tarfile.open(self.path) as layout:
            for number, layer in enumerate(self.manifest["layers"]):
                blob = layout.extractfile(f"blobs/{layer['digest'].replace(':', '/')}")
                assert blob is not None
                with tarfile.open(fileobj=blob, mode="r|*") as changes:
                    for info in changes:
                        path = posixpath.normpath(info.name.removeprefix("./"))
                        directory, name = posixpath.split(path)
                        if name == ".wh..wh..opq":  # opaque directory: drop lower contents
                            prefix = f"{directory}/"
                            files = {p: e for p, e in files.items() if not p.startswith(prefix)}
                        elif name.startswith(".wh."):
                            gone = posixpath.join(directory, name.removeprefix(".wh."))
                            files = {
                                p: e
                                for p, e in files.items()
                                if p != gone and not p.startswith(f"{gone}/")
                            }
                        elif path != ".":
                            files[path] = Entry(info, number)
        return files

    def read(self, path: str) -> bytes:
        """The contents of a regular file of the final filesystem."""
        entry = self.files[path]
        assert entry.info.isfile(), f"{path} is not a regular file"
        with tarfile.open(self.path) as layout:
            layer = self.manifest["layers"][entry.layer]
            blob = layout.extractfile(f"blobs/{layer['digest'].replace(':', '/')}")
            assert blob is not None
            with tarfile.open(fileobj=blob, mode="r|*") as changes:
                for info in changes:
                    if posixpath.normpath(info.name.removeprefix("./")) == path:
                        content = changes.extractfile(info)
                        assert content is not None
                        return content.read()
        raise AssertionError(f"{path} vanished from layer {entry.layer}")

    def resolve(self, path: str, hops: int = 16) -> str:
        """Follow symbolic links (absolute or relative) inside the image, like the kernel."""
        parts = path.strip("/").split("/")
        resolved: list[str] = []
        while parts:
            resolved.append(parts.pop(0))
            entry = self.files.get("/".join(resolved))
            if entry is not None and entry.info.issym():
                assert hops > 0, f"symlink loop at {path}"
                hops -= 1
                target = entry.info.linkname
                base = [] if target.startswith("/") else resolved[:-1]
                parts = [*posixpath.normpath("/".join([*base, target])).strip("/").split("/"),
                         *parts]  # fmt: skip
                resolved = []
        return "/".join(resolved)
