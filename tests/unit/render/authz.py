"""A small, independent model of how Istio decides one request, for testing the policies the
renderers generate (not used by the operator).

What it models, from Istio's reference docs and pilot's policy attachment code
(pilot/pkg/model/policyattachment.go):
- Enforcement points. A sidecar or ztunnel applies the policies of the destination's
  namespace that have no `targetRefs` and whose `selector` is absent or a subset of the pod's
  labels. A waypoint applies only policies whose `targetRefs` name the destination Service
  (group "", kind Service) or the waypoint's own Gateway; it never applies selector or
  namespace-wide policies. Behind a waypoint, ztunnel sees the waypoint's identity.
- Order: if any DENY policy matches, deny; else if no ALLOW policy applies, allow; else
  allow only if some rule of an ALLOW policy matches. An ALLOW policy without rules (e.g.
  `spec: {}`) applies and matches nothing: it denies everything.
- A rule matches when each of `from`, `to`, `when` that is present matches: `from` if any
  source matches, `to` if any operation matches. `when` is not modelled (it never matches),
  so a policy that relies on it is caught by the tests, not silently passed.
- A source or operation matches when every field it sets matches; an empty list counts as
  unset (Istio's proto semantics), which is why the renderers must never emit one. Values
  match exactly, `*`, or by a leading/trailing `*` wildcard. A plaintext caller (no mTLS)
  has no principal and no namespace, so it matches no rule that names them.
- PeerAuthentication STRICT refuses plaintext at the pods (workload-selected policies).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Caller:
    principal: str | None  # None: plaintext, no mTLS identity
    namespace: str | None


@dataclass(frozen=True)
class Destination:
    namespace: str
    pod_labels: dict[str, str]
    service: str
    waypoint: str | None = None  # the Gateway the Service is bound to (istio.io/use-waypoint)
    ports: dict[int, int] = field(default_factory=dict)  # service port -> target port


def _value_matches(pattern: str, value: str | None) -> bool:
    if value is None:
        return False
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return pattern == value


def _field_matches(values: list[str] | None, negated: list[str] | None, value: str | None) -> bool:
    if values and not any(_value_matches(v, value) for v in values):
        return False
    return not (negated and any(_value_matches(v, value) for v in negated))


def _source_matches(source: dict[str, Any], caller: Caller) -> bool:
    known = {"principals", "notPrincipals", "namespaces", "notNamespaces"}
    if set(source) - known:
        raise NotImplementedError(f"source fields not modelled: {set(source) - known}")
    return _field_matches(
        source.get("principals"), source.get("notPrincipals"), caller.principal
    ) and _field_matches(source.get("namespaces"), source.get("notNamespaces"), caller.namespace)


def _operation_matches(operation: dict[str, Any], port: int) -> bool:
    known = {"ports", "notPorts"}
    if set(operation) - known:
        raise NotImplementedError(f"operation fields not modelled: {set(operation) - known}")
    return _field_matches(operation.get("ports"), operation.get("notPorts"), str(port))


def _rule_matches(rule: dict[str, Any], caller: Caller, port: int) -> bool:
    if rule.get("when"):
        return False
    sources = rule.get("from") or []
    operations = rule.get("to") or []
    if sources and not any(_source_matches(s.get("source") or {}, caller) for s in sources):
        return False
    return not operations or any(
        _operation_matches(o.get("operation") or {}, port) for o in operations
    )


def decide(policies: list[dict[str, Any]], caller: Caller, port: int) -> bool:
    """Allow or deny at one enforcement point, given the policies that apply there."""
    specs = [p.get("spec") or {} for p in policies]
    for spec in specs:
        if spec.get("action") in ("CUSTOM", "AUDIT"):
            raise NotImplementedError(f"action {spec['action']} is not modelled")
    if any(
        spec.get("action") == "DENY"
        and any(_rule_matches(r, caller, port) for r in spec.get("rules") or [])
        for spec in specs
    ):
        return False
    allows = [spec for spec in specs if spec.get("action", "ALLOW") == "ALLOW"]
    if not allows:
        return True
    return any(_rule_matches(r, caller, port) for spec in allows for r in spec.get("rules") or [])


def at_pods(objects: list[dict[str, Any]], destination: Destination) -> list[dict[str, Any]]:
    """The AuthorizationPolicies a sidecar or ztunnel applies for the destination's pods."""
    chosen = []
    for obj in objects:
        if (
            obj["kind"] != "AuthorizationPolicy"
            or obj["metadata"]["namespace"] != destination.namespace
        ):
            continue
        spec = obj.get("spec") or {}
        if spec.get("targetRefs") or spec.get("targetRef"):
            continue
        wanted = (spec.get("selector") or {}).get("matchLabels") or {}
        if all(destination.pod_labels.get(k) == v for k, v in wanted.items()):
            chosen.append(obj)
    return chosen


def at_waypoint(objects: list[dict[str, Any]], destination: Destination) -> list[dict[str, Any]]:
    """The AuthorizationPolicies the destination's waypoint applies to it."""
    chosen = []
    for obj in objects:
        if (
            obj["kind"] != "AuthorizationPolicy"
            or obj["metadata"]["namespace"] != destination.namespace
        ):
            continue
        spec = obj.get("spec") or {}
        for ref in spec.get("targetRefs") or []:
            service = ref.get("kind") == "Service" and ref.get("group", "") in ("", "core")
            service = service and ref["name"] == destination.service
            gateway = ref.get("kind") == "Gateway" and ref["name"] == destination.waypoint
            if service or gateway:
                chosen.append(obj)
                break
    return chosen


def strict_mtls(objects: list[dict[str, Any]], destination: Destination) -> bool:
    for obj in objects:
        if (
            obj["kind"] != "PeerAuthentication"
            or obj["metadata"]["namespace"] != destination.namespace
        ):
            continue
        spec = obj.get("spec") or {}
        wanted = (spec.get("selector") or {}).get("matchLabels") or {}
        selected = all(destination.pod_labels.get(k) == v for k, v in wanted.items())
        if selected and (spec.get("mtls") or {}).get("mode") == "STRICT":
            return True
    return False


def may_call(
    objects: list[dict[str, Any]],
    caller: Caller,
    destination: Destination,
    port: int,
    waypoint_identity: Caller | None = None,
    via_service: bool = True,
) -> bool:
    """Does a request from `caller` reach the destination on `port` (a Service port)?
    Through the Service it passes the waypoint (if the Service has one) with the caller's
    identity, then the pods with the waypoint's; dialled at a pod IP it skips the waypoint."""
    target = destination.ports.get(port, port)
    if via_service and destination.waypoint is not None:
        assert waypoint_identity is not None, "a waypoint needs its identity"
        if not decide(at_waypoint(objects, destination), caller, port):
            return False
        caller = waypoint_identity
    if caller.principal is None and strict_mtls(objects, destination):
        return False
    return decide(at_pods(objects, destination), caller, target)
