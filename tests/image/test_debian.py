"""The base layer's package selection: which of apt's downloads the image keeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from image.debian import (
    BaseBuildError,
    DebianPackage,
    package_from_control,
    parse_control,
    parse_relations,
    runtime_closure,
)


def package(name: str, depends: str = "", provides: str = "", pre: str = "") -> DebianPackage:
    control = f"Package: {name}\nVersion: 1.0\nArchitecture: amd64\n"
    control += "".join(
        f"{field}: {value}\n"
        for field, value in (("Pre-Depends", pre), ("Depends", depends), ("Provides", provides))
        if value
    )
    return package_from_control(control, Path(f"{name}_1.0_amd64.deb"))


def index(*packages: DebianPackage) -> dict[str, DebianPackage]:
    return {p.name: p for p in packages}


def test_control_fields_keep_their_continuation_lines() -> None:
    fields = parse_control("Package: libc6\nDescription: GNU C Library\n shared libraries\n")
    assert fields == {"Package": "libc6", "Description": "GNU C Library\n shared libraries"}


def test_relations_are_package_names_grouped_by_alternatives() -> None:
    relations = parse_relations(
        "libc6 (>= 2.34), media-types | mime-support, dpkg (>= 1.15.4) | install-info, "
        "python3:any, foo [amd64] <!nocheck>"
    )
    assert relations == (
        ("libc6",),
        ("media-types", "mime-support"),
        ("dpkg", "install-info"),
        ("python3",),
        ("foo",),
    )


def test_pre_depends_count_as_dependencies() -> None:
    assert package("base-files", pre="awk").depends == (("awk",),)


def test_install_time_only_dependencies_and_what_only_they_need_are_dropped() -> None:
    packages = index(
        package("python3.11-minimal", depends="libpython3.11-minimal, zlib1g"),
        package("libpython3.11-minimal", depends="libc6"),
        package("libpython3.11-stdlib", depends="libreadline8, media-types | mime-support"),
        package("libreadline8", depends="readline-common, libc6"),
        package("readline-common", depends="dpkg (>= 1.15.4) | install-info"),
        package("dpkg", depends="tar, libselinux1"),
        package("tar", depends="libacl1"),
        package("libacl1"),
        package("libselinux1"),
        package("media-types"),
        package("libc6"),
        package("zlib1g"),
        package("base-files", pre="awk"),
        package("mawk", provides="awk"),
        package("libstdc++6", depends="libgcc-s1, libc6"),
        package("libgcc-s1", depends="libc6"),
    )
    kept = runtime_closure(packages)
    assert kept == {
        "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libreadline8",
        "readline-common", "media-types", "libc6", "zlib1g", "base-files", "libstdc++6",
        "libgcc-s1",
    }  # fmt: skip


def test_a_virtual_dependency_follows_the_package_apt_chose_to_provide_it() -> None:
    packages = index(
        package("app", depends="awk-like"),
        package("mawk", provides="awk-like"),
    )
    assert runtime_closure(packages, roots=["app"], install_time_only=frozenset()) == {
        "app",
        "mawk",
    }


def test_a_runtime_dependency_apt_did_not_download_is_an_error() -> None:
    packages = index(package("app", depends="libmissing"))
    with pytest.raises(BaseBuildError, match="libmissing"):
        runtime_closure(packages, roots=["app"])
