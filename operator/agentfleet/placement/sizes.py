"""Integer units the ledger counts in (MiB of VRAM, millicores, bytes) and how people read them.

Integers, not Decimals, so that adding and removing a Pod is exact and a rebuild of the books
equals the incrementally kept ones.
"""

from __future__ import annotations

import math

from agentfleet.api import quantity

MIB = 2**20


def cpu_millis(value: str | int) -> int:
    """Millicores of a CPU quantity, rounded up ("500m" -> 500, "2" -> 2000)."""
    return math.ceil(quantity.parse(value) * 1000)


def whole(value: str | int) -> int:
    """A quantity as a whole number, rounded up (bytes of memory, count of devices)."""
    return math.ceil(quantity.parse(value))


def mib(value: str | int) -> int:
    """Whole MiB of a size quantity, rounded up, as GFD reports `nvidia.com/gpu.memory`."""
    return quantity.to_mebibytes(value)


def format_mib(amount: int, *, down: bool = False) -> str:
    """VRAM for people, one decimal at most: 22.5Gi, 80Gi, 512Mi.

    `down=True` floors instead of rounding, for free amounts: a message never shows more free
    VRAM than there is (15.99Gi free is "15.9Gi", not a misleading "16Gi")."""
    if abs(amount) < 1024:
        return f"{amount}Mi"
    tenths = amount * 10 / 1024
    rounded = math.floor(tenths) if down else round(tenths)
    text = f"{rounded / 10:.1f}".removesuffix(".0")
    return f"{text}Gi"


def format_bytes(amount: int, *, down: bool = False) -> str:
    """Memory in the same style as VRAM ("4Gi", "1.5Ti" is shown as "1536Gi")."""
    if amount >= MIB:
        return format_mib(amount // MIB if down else math.ceil(amount / MIB), down=down)
    return str(amount) if amount <= 0 else f"{amount}B"


def format_cpu(millis: int) -> str:
    """CPU for people, as `kubectl describe node` shows it: 2, 1.5, 250m."""
    if millis % 1000 == 0:
        return str(millis // 1000)
    if millis > 1000 and millis % 100 == 0:
        return f"{millis / 1000:g}"
    return f"{millis}m"
