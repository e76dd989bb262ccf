"""Kubernetes resource quantities ("24Gi", "500m", 2) as exact decimals, and how people
read sizes and CPUs (one style everywhere: status, refusals, the CLI's tables).

Needed to compare what we applied with what the API server stored (it canonicalises
"0.5" to "500m") and to reason about VRAM sizes.
"""

import math
import re
from decimal import Decimal

PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_REGEX = re.compile(PATTERN)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}


def is_quantity(value: object) -> bool:
    return isinstance(value, int | str) and bool(_REGEX.match(str(value)))


def parse(value: str | int) -> Decimal:
    """Exact value of a quantity; raises ValueError on anything Kubernetes would reject."""
    text = str(value)
    if not _REGEX.match(text):
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 24Gi, 500m, 2)")
    for suffix, factor in _BINARY.items():
        if text.endswith(suffix):
            return Decimal(text[: -len(suffix)]) * factor
    if text[-1] in "numkMGTPE":  # an exponent form such as 1e3 always ends in a digit
        return Decimal(text[:-1]) * _DECIMAL[text[-1]]
    return Decimal(text)  # plain number or exponent form such as 1e3


def to_mebibytes(value: str | int) -> int:
    """Whole MiB, rounded up, as GPU Feature Discovery reports `nvidia.com/gpu.memory`."""
    exact = parse(value) / 2**20
    return int(exact.to_integral_value(rounding="ROUND_CEILING"))


def format_gib(mib: int, *, down: bool = False) -> str:
    """MiB as GiB for people, one decimal at most: "80Gi", "22.5Gi", "0.5Gi" (a column of a
    table reads in one unit).

    `down=True` floors instead of rounding, for free amounts: a message never shows more free
    than there is (15.99Gi free is "15.9Gi", not a misleading "16Gi")."""
    tenths = mib * 10 / 1024
    rounded = math.floor(tenths) if down else round(tenths)
    return f"{rounded / 10:.1f}".removesuffix(".0") + "Gi"


def format_mib(mib: int, *, down: bool = False) -> str:
    """VRAM for people: "22.5Gi", "80Gi", "512Mi" (see format_gib for `down`)."""
    if abs(mib) < 1024:
        return f"{mib}Mi"
    return format_gib(mib, down=down)


def format_bytes(value: str | int, *, down: bool = False) -> str:
    """Memory or VRAM (a quantity, or bytes) in format_mib's style: "4Gi", "22.4Gi" for 24G,
    "1536Gi" rather than "1.5Ti"."""
    amount = math.ceil(parse(value))
    if amount >= _BINARY["Mi"]:
        mib = amount // _BINARY["Mi"] if down else math.ceil(amount / _BINARY["Mi"])
        return format_mib(mib, down=down)
    return str(amount) if amount <= 0 else f"{amount}B"


def format_cpu(millis: int) -> str:
    """CPU for people, as `kubectl describe node` shows it: 2, 1.5, 250m."""
    if millis % 1000 == 0:
        return str(millis // 1000)
    if millis > 1000 and millis % 100 == 0:
        return f"{millis / 1000:g}"
    return f"{millis}m"
