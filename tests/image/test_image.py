"""The built image, read from its OCI archive: how it starts, and what its filesystem holds."""

from __future__ import annotations

import posixpath
import re
import stat
from datetime import datetime

import yaml

from image import build
from tests.image.conftest import locked_versions, normalise
from tests.image.oci import OciArchive

SITE_PACKAGES = "opt/agentfleet/lib/python3.11/site-packages"
# Programs that must not exist anywhere: package managers, compilers, build tools, shells.
FORBIDDEN_PROGRAMS = {
    "apt", "apt-get", "dpkg", "pip", "pip3", "pip3.11", "easy_install", "gcc", "cc", "c++",
    "g++", "ld", "as", "make", "cmake", "perl", "sh", "bash", "dash", "busybox", "tar", "curl",
}  # fmt: skip
# Python distributions that only developing, testing or installing needs.
# cryptography is a runtime dependency since `agentfleet api` reads client certificates
# (mutual TLS on gRPC: CN = user, O = groups); grpcio-tools (code generation) stays dev-only.
FORBIDDEN_DISTRIBUTIONS = {
    "pip", "setuptools", "wheel", "pytest", "kubernetes", "kubernetes-asyncio", "agentfleet-dev",
    "grpcio-tools",
    "hypothesis", "mypy", "ruff",
}  # fmt: skip


def test_runs_as_the_numeric_non_root_user(image: OciArchive) -> None:
    # Numeric, so that the kubelet can enforce runAsNonRoot without reading /etc/passwd.
    assert image.config["config"]["User"] == "65532:65532"
    passwd = image.read("etc/passwd").decode()
    assert "nonroot:x:65532:65532:" in passwd


def test_starts_the_operator(image: OciArchive) -> None:
    config = image.config["config"]
    assert config["Entrypoint"] == ["agentfleet"]
    assert config["Cmd"] == ["run"]
    assert set(config["ExposedPorts"]) == {"8080/tcp", "8081/tcp"}


def test_the_entrypoint_resolves_on_path_to_the_images_python(image: OciArchive) -> None:
    env = dict(item.split("=", 1) for item in image.config["config"]["Env"])
    found = [
        f"{d.strip('/')}/agentfleet"
        for d in env["PATH"].split(":")
        if f"{d.strip('/')}/agentfleet" in image.files
    ]
    assert found, f"no agentfleet on PATH={env['PATH']}"
    script = image.files[found[0]].info
    assert script.isfile() and script.mode & stat.S_IXOTH
    shebang = image.read(found[0]).decode().splitlines()[0]
    interpreter = image.resolve(shebang.removeprefix("#!"))
    assert interpreter == "usr/bin/python3.11"
    assert image.files[interpreter].info.isfile()


def test_labels_describe_the_release(image: OciArchive) -> None:
    labels = image.config["config"]["Labels"]
    meta = build.project()
    assert labels["org.opencontainers.image.version"] == meta["version"]
    assert labels["org.opencontainers.image.licenses"] == meta["license"]
    assert labels["org.opencontainers.image.title"] == "agentfleet-operator"
    assert re.fullmatch(
        r"[0-9a-f]{40}(-dirty)?|unknown", labels["org.opencontainers.image.revision"]
    )
    datetime.strptime(labels["org.opencontainers.image.created"], "%Y-%m-%dT%H:%M:%SZ")


def test_the_archive_is_tagged_as_the_install_manifests_expect(image: OciArchive) -> None:
    (descriptor,) = image.index["manifests"]
    reference = descriptor["annotations"]["org.opencontainers.image.ref.name"]
    deployment = yaml.safe_load_all((build.ROOT / "manifests/operator/deployment.yaml").read_text())
    (operator,) = [d for d in deployment if d and d["kind"] == "Deployment"]
    assert operator["spec"]["template"]["spec"]["containers"][0]["image"] == reference


def test_two_layers_debian_base_then_the_operator(image: OciArchive) -> None:
    layers = image.manifest["layers"]
    assert [layer["mediaType"] for layer in layers] == [
        "application/vnd.oci.image.layer.v1.tar+gzip"
    ] * 2
    base_only = {p for p, e in image.files.items() if e.layer == 0}
    assert "usr/bin/python3.11" in base_only
    assert not any(p.startswith("opt/") for p in base_only)
    operator_layer = {p for p, e in image.files.items() if e.layer == 1}
    assert operator_layer and all(
        p == "opt" or p.startswith("opt/agentfleet") for p in operator_layer
    )


def test_no_package_manager_compiler_shell_or_build_tool(image: OciArchive) -> None:
    found = sorted(
        p
        for p, e in image.files.items()
        if not e.info.isdir() and posixpath.basename(p) in FORBIDDEN_PROGRAMS
    )
    assert found == []
    programs = sorted(
        p
        for p, e in image.files.items()
        if e.info.isfile() and e.info.mode & stat.S_IXUSR and re.search(r"(^|/)s?bin/", p)
    )
    # The only ELF program is the interpreter; the rest are the venv's console scripts.
    assert [p for p in programs if not p.startswith("opt/agentfleet/bin/")] == [
        "usr/bin/python3.11"
    ]


def test_only_locked_runtime_distributions_are_installed(image: OciArchive) -> None:
    installed = {}
    for path in image.files:
        match = re.fullmatch(r".*/(?:site|dist)-packages/([^/]+)-([^-/]+)\.dist-info", path)
        if match:
            installed[normalise(match.group(1))] = match.group(2)
    assert not FORBIDDEN_DISTRIBUTIONS & set(installed)
    assert installed == {**locked_versions(), "agentfleet": build.project()["version"]}
    for name in ("kopf", "pydantic", "aiohttp"):  # the ones the operator stands on
        assert installed[name] == locked_versions()[name]


def test_no_dev_or_test_code(image: OciArchive) -> None:
    assert f"{SITE_PACKAGES}/agentfleet/frontends/cli.py" in image.files
    top_level = {p.split("/")[5] for p in image.files if p.startswith(f"{SITE_PACKAGES}/")}
    assert not top_level & {"agentfleet_dev", "pytest", "_pytest", "grpc_tools", "kubernetes"}
    assert not top_level & {"pip", "setuptools", "wheel", "_distutils_hack", "pkg_resources"}
    stdlib = {p.split("/")[3] for p in image.files if p.startswith("usr/lib/python3.11/")}
    assert "ensurepip" not in stdlib  # Debian keeps it in python3.11-venv, not installed
    assert not any(p.startswith("tests/") or "/tests/unit" in p for p in image.files)


def test_the_operator_cannot_modify_its_own_code(image: OciArchive) -> None:
    for path, entry in image.files.items():
        if path.startswith("opt/agentfleet") and not entry.info.issym():
            assert (entry.info.uid, entry.info.gid) == (0, 0), path
            assert not entry.info.mode & (stat.S_IWGRP | stat.S_IWOTH), path


def test_no_setuid_or_setgid_programs(image: OciArchive) -> None:
    special = [p for p, e in image.files.items() if e.info.isfile() and e.info.mode & 0o6000]
    assert special == []


def test_debian_packages_are_recorded_for_scanners(image: OciArchive) -> None:
    status = {p.rsplit("/", 1)[1]: p for p in image.files if p.startswith("var/lib/dpkg/status.d/")}
    assert {"python3.11-minimal", "libpython3.11-stdlib", "libc6", "libssl3"} <= set(status)
    assert not {"dpkg", "apt", "perl-base", "tar", "mawk", "bash"} & set(status)
    control = image.read(status["python3.11-minimal"]).decode()
    assert re.search(r"^Version: 3\.11\.", control, re.MULTILINE)
    for name in status:  # each package's licence stays (some share a doc directory by symlink)
        assert image.resolve(f"usr/share/doc/{name}/copyright") in image.files, name
    os_release = image.read(image.resolve("etc/os-release")).decode()
    assert "VERSION_CODENAME=bookworm" in os_release
