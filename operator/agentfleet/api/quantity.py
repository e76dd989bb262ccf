"""Kubernetes resource quantities ("24Gi", "500m", 2) as exact decimals, and how people
read sizes and CPUs (one style everywhere: status, refusals, the CLI's tables).

Needed to compare what we applied with what the API server stored (it canonicalises
"0.5" to "500m") and to reason about VRAM sizes.

Quantities come from people and nodes, so parsing is bounded whatever the CRD let through
(an object stored before a bound existed, a node's allocatable, an import file): at most
`MAX_LENGTH` characters and a magnitude below `MAX_MAGNITUDE`, checked before any
arithmetic. "1e999999" is refused at once instead of becoming a million-digit integer
(that took tens of seconds on the event loop).
"""

import decimal
import math
import re
from decimal import Decimal

PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
# Longer than any quantity a person or the API server writes ("9223372036854775807" is 19).
MAX_LENGTH = 64
# Kubernetes keeps quantities as int64 multiples of their scale; 2^63 (8Ei) is beyond any
# resource of any node.
MAX_MAGNITUDE = Decimal(2**63)
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
# Exact for every accepted text: 64 digits of mantissa times a factor of at most 19 digits.
_EXACT = decimal.Context(prec=100, Emax=10_000, Emin=-10_000, traps=[decimal.InvalidOperation])


def is_quantity(value: object) -> bool:
    """A quantity Kubernetes accepts and `parse` reads (so not "1e999999", nor "1e2.5": the
    CRD's pattern admits fractional exponents, which Kubernetes refuses)."""
    if not isinstance(value, int | str) or isinstance(value, bool):
        return False
    try:
        parse(value)
    except ValueError:
        return False
    return True


def parse(value: str | int) -> Decimal:
    """Exact value of a quantity; ValueError on anything Kubernetes would reject and on
    anything longer than MAX_LENGTH or not below MAX_MAGNITUDE. Cheap for any input."""
    if isinstance(value, int) and not -(2**63) < value < 2**63:
        raise ValueError(f"{_shown(value)} is too large a quantity (at most 2^63)")
    text = str(value)
    if len(text) > MAX_LENGTH:
        raise ValueError(
            f"{_shown(text)} is not a Kubernetes quantity: longer than {MAX_LENGTH} characters"
        )
    if not _REGEX.match(text):
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 24Gi, 500m, 2)")
    number, factor = text, Decimal(1)
    for suffix, binary in _BINARY.items():
        if text.endswith(suffix):
            number, factor = text[: -len(suffix)], Decimal(binary)
            break
    else:
        if text[-1] in "numkMGTPE":  # an exponent form such as 1e3 always ends in a digit
            number, factor = text[:-1], _DECIMAL[text[-1]]
    try:
        exact = Decimal(number)  # exact, and cheap: at most MAX_LENGTH characters
    except decimal.InvalidOperation:  # found by the fuzz tests: a reconcile error for ever
        raise ValueError(f"{text!r} is not a Kubernetes quantity (a fractional exponent)") from None
    if exact and exact.adjusted() + factor.adjusted() > MAX_MAGNITUDE.adjusted():
        raise ValueError(f"{text!r} is too large a quantity (at most 2^63)")
    if exact and exact.adjusted() + factor.adjusted() < -MAX_MAGNITUDE.adjusted() - 30:
        return Decimal(0)  # far below a nano-unit: nothing
    result = _EXACT.multiply(exact, factor)
    if abs(result) >= MAX_MAGNITUDE:
        raise ValueError(f"{text!r} is too large a quantity (at most 2^63)")
    return result


def _shown(value: str | int) -> str:
    """A short, cheap rendering of a hostile value for an error message."""
    if isinstance(value, int):  # str() of a huge int is itself slow (and refused past 4300)
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    return repr(value[:20] + "…") if len(value) > 20 else repr(value)


def to_mebibytes(value: str | int) -> int:
    """Whole MiB, rounded up, as GPU Feature Discovery reports `nvidia.com/gpu.memory`."""
    exact = _EXACT.divide(parse(value), Decimal(2**20))
    return int(exact.to_integral_value(rounding=decimal.ROUND_CEILING))


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
