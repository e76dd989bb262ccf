"""Multi-Cluster Services: the agent's Service exported to the other clusters of its ClusterSet.

`spec.multicluster.export: true` renders a ServiceExport (KEP-1645, `multicluster.x-k8s.io/
v1alpha1`, the version Istio and the MCS implementations read) with the Service's name and
namespace. An MCS implementation (GKE MCS, Submariner Lighthouse, Cilium ClusterMesh, or Istio
with `ENABLE_MCS_SERVICE_DISCOVERY`) then creates the ServiceImport in every cluster of the
set, and the agent answers at `<name>.<namespace>.svc.clusterset.local` on its four ports.
The CRD is optional, like KEDA's and Istio's: without it the agent runs and reports
`MultiClusterReady=False/CRDNotInstalled`, and converges once it is installed.

In ambient mode Istio's own multi-cluster discovery reads no ServiceExport: it shares the
Services labelled `istio.io/global=true` (its ambient profile's serviceScopeConfigs), and a
service behind a waypoint also needs a global waypoint; render/istio.py and render/gateway.py
add those labels.
"""

from __future__ import annotations

from typing import Any

from agentfleet.api.models import AIAgent
from agentfleet.render.common import object_meta
from agentfleet.render.context import RenderContext

API_VERSION = "multicluster.x-k8s.io/v1alpha1"
KIND = "ServiceExport"


def exported(agent: AIAgent) -> bool:
    return bool(agent.spec.multicluster and agent.spec.multicluster.export)


def service_exports(agent: AIAgent, context: RenderContext) -> list[dict[str, Any]]:
    if not exported(agent):
        return []
    return [{"apiVersion": API_VERSION, "kind": KIND, "metadata": object_meta(agent)}]


def health(body: dict[str, Any]) -> tuple[bool, str, str] | None:
    """What the MCS implementation says of the export: `Valid` False (it cannot be exported)
    or `Conflict` True (the clusters disagree on the Service's ports or type) is a failure
    with its words; `Ready`/`Valid` True is success. Nothing while no implementation
    has reported."""
    conditions = {
        cond.get("type"): cond for cond in (body.get("status") or {}).get("conditions") or []
    }
    where = f"ServiceExport {body['metadata']['name']}"
    valid, conflict = conditions.get("Valid") or {}, conditions.get("Conflict") or {}
    if valid.get("status") == "False":
        return False, str(valid.get("reason") or "Invalid"), f"{where}: {valid.get('message', '')}"
    if conflict.get("status") == "True":
        reason = str(conflict.get("reason") or "Conflict")
        return False, reason, f"{where}: {conflict.get('message', '')}"
    for kind in ("Ready", "Valid"):
        cond = conditions.get(kind) or {}
        if cond.get("status") == "True":
            return (
                True,
                str(cond.get("reason") or "Exported"),
                f"{where}: {cond.get('message', '')}",
            )
    return None
