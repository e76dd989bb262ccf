from decimal import Decimal

import pytest

from agentfleet.api import quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("24Gi", Decimal(24 * 2**30)),
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        (2, Decimal(2)),
        ("1.5Ki", Decimal(1536)),
        ("1e3", Decimal(1000)),
        ("3E", Decimal("3e18")),
        ("80G", Decimal("80e9")),
    ],
)
def test_parse(text: str | int, value: Decimal) -> None:
    assert quantity.parse(text) == value


@pytest.mark.parametrize("text", ["24GB", "", "Gi", "1.2.3", "-", "24 Gi"])
def test_parse_rejects_what_kubernetes_rejects(text: str) -> None:
    assert not quantity.is_quantity(text)
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        quantity.parse(text)


def test_to_mebibytes_rounds_up() -> None:
    assert quantity.to_mebibytes("24Gi") == 24576
    assert quantity.to_mebibytes("80G") == 76294  # 80e9 / 2**20 = 76293.9...


def test_format_bytes() -> None:
    assert quantity.format_bytes("24Gi") == "24Gi"
    assert quantity.format_bytes("1536Mi") == "1.5Gi"
    assert quantity.format_bytes("24G") == "22.4Gi"
    assert quantity.format_bytes("1.5Ti") == "1536Gi"
    assert quantity.format_bytes(512) == "512B"
    assert quantity.format_bytes(0) == "0"
    assert quantity.format_bytes(2**30 - 1, down=True) == "1023Mi"


def test_sizes_for_people_have_one_decimal_at_most() -> None:
    assert quantity.format_gib(81920) == "80Gi"
    assert quantity.format_gib(23034) == "22.5Gi"
    assert quantity.format_gib(0) == "0Gi"
    assert quantity.format_gib(512) == "0.5Gi"
    assert quantity.format_mib(512) == "512Mi"
    assert quantity.format_mib(16373) == "16Gi"
    assert quantity.format_mib(16373, down=True) == "15.9Gi"  # free: never more than there is


def test_cpu_for_people() -> None:
    assert [quantity.format_cpu(m) for m in (2000, 1500, 250, 1250)] == [
        "2",
        "1.5",
        "250m",
        "1250m",
    ]
