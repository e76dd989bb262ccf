"""Kubernetes resource quantities ("24Gi", "500m", 2) as exact decimals.

Needed to compare what we applied with what the API server stored (it canonicalises
"0.5" to "500m") and to reason about VRAM sizes.
"""

import decimal
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
    """A quantity `parse` reads: the pattern (the CRD's) also admits fractional exponents
    such as "1e2.5", which Kubernetes refuses and Decimal cannot read."""
    if not isinstance(value, int | str) or not _REGEX.match(str(value)):
        return False
    try:
        parse(value)
    except ValueError:
        return False
    return True


def parse(value: str | int) -> Decimal:
    """Exact value of a quantity; raises ValueError on anything Kubernetes would reject."""
    text = str(value)
    if not _REGEX.match(text):
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 24Gi, 500m, 2)")
    try:
        for suffix, factor in _BINARY.items():
            if text.endswith(suffix):
                return Decimal(text[: -len(suffix)]) * factor
        if text[-1] in "numkMGTPE":  # an exponent form such as 1e3 always ends in a digit
            return Decimal(text[:-1]) * _DECIMAL[text[-1]]
        return Decimal(text)  # plain number or exponent form such as 1e3
    except decimal.InvalidOperation:  # found by the fuzz tests: a reconcile error for ever
        raise ValueError(f"{text!r} is not a Kubernetes quantity (a fractional exponent)") from None


def to_mebibytes(value: str | int) -> int:
    """Whole MiB, rounded up, as GPU Feature Discovery reports `nvidia.com/gpu.memory`."""
    exact = parse(value) / 2**20
    return int(exact.to_integral_value(rounding="ROUND_CEILING"))


def format_bytes(value: str | int | Decimal) -> str:
    """Human size in the largest binary unit that keeps it at or above 1 ("24Gi", "1.5Ti")."""
    amount = value if isinstance(value, Decimal) else parse(value)
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        if amount >= _BINARY[suffix]:
            scaled = amount / _BINARY[suffix]
            return f"{scaled.normalize():f}{suffix}"
    return f"{amount.normalize():f}"
