"""GPU/VRAM placement: pure code, no I/O.

    Nodes ──inventory──▶ Inventory ─┐
    Pods  ──ledger─────▶ Ledger  ───┼─decide.place(request)─▶ Decision | Refusal
    Pod + AIAgent ──request──▶ Request ┘

The operator feeds `Inventory` from Node and Lease watches and `Ledger` from a Pod watch,
asks `place` for one replica at a time, books the answer with `Ledger.assume`, and writes
`Decision.annotation()` on the Pod. `table.gpu_table` is the human view.
"""

from agentfleet.placement.decide import (
    Decision,
    Refusal,
    pin_to_node,
    place,
)
from agentfleet.placement.inventory import (
    GPUDevice,
    Ineligible,
    Inventory,
    NodeInventory,
    heartbeat_of,
    node_from_object,
)
from agentfleet.placement.ledger import (
    Ledger,
    PlacementRecord,
    format_placement,
    parse_placement,
)
from agentfleet.placement.request import Request, request_for_pod
from agentfleet.placement.table import GPURow, gpu_table

__all__ = [
    "Decision",
    "GPUDevice",
    "GPURow",
    "Ineligible",
    "Inventory",
    "Ledger",
    "NodeInventory",
    "PlacementRecord",
    "Refusal",
    "Request",
    "format_placement",
    "gpu_table",
    "heartbeat_of",
    "node_from_object",
    "parse_placement",
    "pin_to_node",
    "place",
    "request_for_pod",
]
