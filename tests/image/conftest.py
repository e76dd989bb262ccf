"""The built operator image (`make image`). Tests that need it are skipped, saying so, only
when the archive does not exist; a broken archive fails them."""

from __future__ import annotations

import re

import pytest

from image import build
from tests.image.oci import OciArchive


def locked_versions() -> dict[str, str]:
    """{normalised name: version} of every pin in requirements/operator.txt."""
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", build.LOCK.read_text(), re.MULTILINE)
    return {normalise(name): version for name, version in pins}


def normalise(name: str) -> str:
    """PEP 503: `Kubernetes_Asyncio` and `kubernetes-asyncio` are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="session")
def image() -> OciArchive:
    archive = build.archive_path(build.project()["version"])
    if not archive.exists():
        pytest.skip(
            f"the image is not built: {archive.relative_to(build.ROOT)} is missing "
            "(`make image`; needs root, mmdebstrap and buildah)"
        )
    return OciArchive(archive)
