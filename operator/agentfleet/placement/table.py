"""The GPU table for people: per node and GPU, total, committed and free VRAM and who is on it.

For `agentfleet gpus` and `GET /gpus` (the origin deploy agent's endpoint, fleet-wide).
"""

from __future__ import annotations

from dataclasses import dataclass

from agentfleet.placement.inventory import Inventory, NodeInventory
from agentfleet.placement.ledger import GPUBooks, Ledger, unplaced_gpus

# The state of a GPU counted whole for a Pod without a decision (not ours, or unreadable).
UNPLACED = "held by a Pod the ledger did not place"


@dataclass(frozen=True)
class GPURow:
    node: str
    index: int
    product: str | None
    sharing: str  # none | time-slicing | mps
    total_mib: int
    committed_mib: int  # what agents hold: the whole GPU for an exclusive holder
    reported_used_mib: int  # what the node agent saw in use (0 when unknown)
    free_mib: int  # total - max(committed, reported)
    agents: tuple[str, ...]  # namespace/name, one entry per agent
    pods: int
    state: str  # "Ready", "unhealthy GPU", or why the node is skipped (NotReady, ...)


def gpu_table(inventory: Inventory, ledger: Ledger) -> list[GPURow]:
    """One row per GPU of every node whose GPUs could be read, sorted by node and index."""
    rows: list[GPURow] = []
    nodes: list[tuple[NodeInventory, str]] = [(n, "Ready") for n in inventory.nodes.values()]
    nodes += [(i.inventory, i.reason) for i in inventory.ineligible.values() if i.inventory]
    for node, state in sorted(nodes, key=lambda pair: pair[0].name):
        books = ledger.books(node.name)
        unplaced = unplaced_gpus(node, books)
        for gpu in node.gpus:
            held = books.gpus.get(gpu.index) or GPUBooks()
            whole = held.exclusive or gpu.index in unplaced
            committed = gpu.memory_mib if whole else held.shared_mib
            used = max(committed, gpu.used_mib) if gpu.healthy else gpu.memory_mib
            rows.append(
                GPURow(
                    node=node.name,
                    index=gpu.index,
                    product=node.product,
                    sharing=node.sharing,
                    total_mib=gpu.memory_mib,
                    committed_mib=committed,
                    reported_used_mib=gpu.used_mib,
                    free_mib=max(gpu.memory_mib - used, 0),
                    agents=tuple(sorted(held.agents)),
                    pods=sum(held.agents.values()),
                    state=(
                        "unhealthy GPU"
                        if not gpu.healthy
                        else UNPLACED
                        if gpu.index in unplaced and state == "Ready"
                        else state
                    ),
                )
            )
    return rows
