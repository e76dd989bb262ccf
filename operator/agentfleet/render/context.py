"""Everything a renderer may read besides the agent itself.

Renderers stay pure: whatever they need from the cluster (the live replica count for the
autoscaler hand-over, the other agents a mesh policy names) is collected by the reconciler
into this value first, so the same agent and context always render the same objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agentfleet.config import RenderConfig


@dataclass(frozen=True)
class RenderContext:
    config: RenderConfig = field(default_factory=RenderConfig)
