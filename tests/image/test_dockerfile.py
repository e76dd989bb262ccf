"""The Dockerfile (for people with Docker) describes the image `make image` builds: same user,
entrypoint, command, ports, PATH, virtualenv and hash-checked lock. No Docker engine needed."""

from __future__ import annotations

import json
import re

from image import build

DOCKERFILE = build.ROOT / "Dockerfile"


def stages() -> list[list[tuple[str, str]]]:
    """Per FROM block: (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    blocks: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        keyword, _, arguments = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            blocks.append([])
        blocks[-1].append((keyword.upper(), arguments.strip()))
    return blocks


def build_stage(keyword: str) -> list[str]:
    return [arguments for kw, arguments in stages()[0] if kw == keyword]


def final(keyword: str) -> list[str]:
    return [arguments for kw, arguments in stages()[-1] if kw == keyword]


def test_same_user_entrypoint_command_and_ports() -> None:
    assert final("USER") == [build.USER]
    assert [json.loads(a) for a in final("ENTRYPOINT")] == [build.ENTRYPOINT]
    assert [json.loads(a) for a in final("CMD")] == [build.CMD]
    assert [int(port) for a in final("EXPOSE") for port in a.split()] == list(build.PORTS)


def test_same_virtualenv_on_the_same_path() -> None:
    environment = " ".join(final("ENV"))
    assert f"PATH={build.PATH}" in environment.split()
    assert f"--from=build {build.VENV} {build.VENV}" in final("COPY")


def test_installs_only_the_hash_checked_lock_and_the_operator_package() -> None:
    runs = " ".join(build_stage("RUN"))
    installs = re.findall(r"install [^&]*", runs)
    assert any(
        "--require-hashes" in i and "--no-deps" in i and "requirements/operator.txt" in i
        for i in installs
    ), installs
    assert all("--no-deps" in i for i in installs if "/opt/agentfleet" in i), installs
    copied = " ".join([*build_stage("COPY"), *final("COPY")])
    assert "dev/" not in copied and "tests" not in copied  # the dev tools never go in


def test_the_final_stage_has_no_pip() -> None:
    # The only thing copied from the build stage is the virtualenv, created --without-pip.
    runs = " ".join(build_stage("RUN"))
    assert f"-m venv --without-pip {build.VENV}" in runs
    assert final("COPY") == [f"--from=build {build.VENV} {build.VENV}"]
    assert not final("RUN")
