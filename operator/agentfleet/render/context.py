"""Everything a renderer may read besides the agent itself.

Renderers stay pure: whatever they need from the cluster (the live replica count for the
autoscaler hand-over, the other agents a mesh policy names) is collected by the reconciler
into this value first, so the same agent and context always render the same objects.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from agentfleet.api.config import RenderConfig


@dataclass(frozen=True)
class Peer:
    """An AIAgent of the same namespace (the agent itself included), as far as the objects
    of other agents may depend on it: mesh policies name callers by agent or type."""

    name: str
    uid: str
    agent_type: str
    service_account: str
    mesh: dict[str, Any] | None = None  # its raw spec.mesh, if any
    exported: bool = False  # spec.multicluster.export: an ambient agent's own waypoint then


class LazyPeers(Sequence[Peer]):
    """A namespace's peers, loaded only when a renderer reads them: only mesh objects do,
    and sorting 10,000 agents of one namespace for every reconcile of a burst is what made
    the operator's CPU grow with the square of the fleet."""

    def __init__(self, load: Callable[[], Sequence[Peer]]) -> None:
        self._load = load

    @functools.cached_property
    def _items(self) -> Sequence[Peer]:
        return self._load()

    @overload
    def __getitem__(self, index: int) -> Peer: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Peer]: ...
    def __getitem__(self, index: int | slice) -> Peer | Sequence[Peer]:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Peer]:
        return iter(self._items)


@dataclass(frozen=True)
class LiveDeployment:
    """What the cluster's copy of the agent's Deployment says about replicas."""

    replicas: int | None = None
    # Field managers that own spec.replicas (ours, the HPA's, a hand-over manager ...).
    replicas_managers: tuple[str, ...] = ()


@dataclass(frozen=True)
class RenderContext:
    config: RenderConfig = field(default_factory=RenderConfig)
    peers: Sequence[Peer] = ()  # sorted by name
    deployment: LiveDeployment | None = None  # None until the Deployment exists
