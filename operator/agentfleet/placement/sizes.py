"""Integer units the ledger counts in (MiB of VRAM, millicores, bytes); api/quantity.py says
how people read them.

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
