"""AIAgent specs generated from the CRD's own OpenAPI schema (crds/, made from models.py).

Every bound is the schema's: enums, minimum/maximum, minLength/maxLength, maxItems,
maxProperties, patterns, required fields, optional blocks present or absent, strings of any
Unicode, and values at the edges (hypothesis draws bounds and lengths at their limits often;
lists of strings are also drawn at exactly maxItems, small maps at exactly maxProperties). The
Kubernetes extensions are read for what they mean: `x-kubernetes-int-or-string` is an integer
or a string matching the quantity pattern (so `1e999999`, `-1Gi` and `0.0001m` are all drawn);
an object with `x-kubernetes-preserve-unknown-fields` (affinity, probes, securityContext,
volume sources, HPA behavior) is a small JSON object whose keys are mostly ones Kubernetes
knows at that place, so the apiserver's validation of what the operator passes through is
reached as well as refused. CEL rules (`x-kubernetes-validations`) are left to the apiserver: a
spec it refuses is an outcome the tests check too (a clean 422 naming the rule).

One deliberate narrowing: replica counts are drawn up to 3, because each replica is a real
Pod on the simulated nodes, and 10,000 of them would measure the controller-manager, not
the operator.

hypothesis-jsonschema was the first choice; its last release (0.23.1) fails on the
hypothesis pinned here (it drives a private API, `many.more`, that hypothesis removed), and
schemathesis's generator is private API too. The CRD uses a small subset of JSON Schema,
so this walks it directly and refuses any keyword it does not know, rather than ignore it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

CRD = Path(__file__).resolve().parents[2] / "crds" / "aiagents.agentfleet.io.yaml"
MAX_PODS = 3
REPLICA_FIELDS = frozenset({"replicas", "autoscaling.minReplicas", "autoscaling.fallback.replicas"})
LIST_CAP = 4  # lists of objects: up to this many (lists of strings also at exactly maxItems)
TEXT_CAP = 40  # strings without a bound: up to this long (bounded ones also at their bound)
# Maps (additionalProperties) hold up to 3 entries, and also exactly maxProperties when
# that is at most this many (resources: 16; the labels' 64 values of up to 32 KiB each would
# only measure the API server's request size limit).
AT_MAX_PROPERTIES_CAP = 16
KNOWN = frozenset(
    {
        "type",
        "properties",
        "required",
        "items",
        "additionalProperties",
        "maxProperties",
        "enum",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "pattern",
        "default",
        "description",
        "anyOf",
        "format",
        "exclusiveMinimum",
        "exclusiveMaximum",
    }
)
# Quantities worth drawing on purpose: the pattern admits them all.
EDGE_QUANTITIES = (
    "0",
    "-1",
    "-1Gi",
    "1e999999",
    "1E18",
    "9223372036854775807",
    "0.0001m",
    "+.5Ki",
    "100Ei",
    "1n",
    "999999999999999999999Pi",
    "1e-9",
    ".1",
    "7.",
)
# Keys Kubernetes knows in each pass-through object, so that generated objects are sometimes
# valid, sometimes wrong in type or value, and sometimes unknown fields.
KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "securityContext": (
        "privileged",
        "allowPrivilegeEscalation",
        "runAsUser",
        "runAsNonRoot",
        "runAsGroup",
        "readOnlyRootFilesystem",
        "capabilities",
        "seccompProfile",
        "procMount",
    ),
    "podSecurityContext": (
        "runAsUser",
        "runAsNonRoot",
        "fsGroup",
        "supplementalGroups",
        "sysctls",
        "seccompProfile",
        "fsGroupChangePolicy",
    ),
    "affinity": ("nodeAffinity", "podAffinity", "podAntiAffinity"),
    "topologySpreadConstraints": (
        "maxSkew",
        "topologyKey",
        "whenUnsatisfiable",
        "labelSelector",
        "minDomains",
    ),
    "liveness": ("httpGet", "tcpSocket", "exec", "grpc", "periodSeconds", "timeoutSeconds"),
    "readiness": ("httpGet", "tcpSocket", "exec", "periodSeconds", "failureThreshold"),
    "startup": ("httpGet", "tcpSocket", "failureThreshold", "initialDelaySeconds"),
    "volumes": (
        "emptyDir",
        "configMap",
        "secret",
        "hostPath",
        "projected",
        "persistentVolumeClaim",
        "nfs",
        "gitRepo",
        "downwardAPI",
    ),
    "behavior": ("scaleUp", "scaleDown"),
}
WORDS = (
    "path",
    "port",
    "type",
    "Always",
    "RuntimeDefault",
    "Unconfined",
    "ALL",
    "add",
    "drop",
    "requiredDuringSchedulingIgnoredDuringExecution",
    "nodeSelectorTerms",
    "matchExpressions",
    "key",
    "operator",
    "In",
    "values",
    "medium",
    "sizeLimit",
    "name",
    "stabilizationWindowSeconds",
)
RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage", "nvidia.com/gpu", "hugepages-2Mi", "pods")


def spec_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def agent_specs() -> st.SearchStrategy[dict[str, Any]]:
    """Specs as a user could write them: anything the CRD's schema describes."""
    return _strategy(spec_schema(), "", "spec")


def _strategy(node: Mapping[str, Any], path: str, field: str) -> st.SearchStrategy[Any]:
    unknown = {k for k in node if k not in KNOWN and not k.startswith("x-kubernetes-")}
    if unknown:
        raise ValueError(
            f"{path or 'spec'}: schema keywords this generator does not know: {unknown}"
        )
    if node.get("x-kubernetes-int-or-string"):
        return _int_or_string(node)
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        low, high = node.get("minimum", -(2**63)), node.get("maximum", 2**63 - 1)
        if path in REPLICA_FIELDS:
            high = min(high, MAX_PODS)
        return st.integers(low, high)
    if kind == "number":  # OpenAPI v3.0: exclusive bounds are booleans beside the bound
        return st.floats(
            node.get("minimum"),
            node.get("maximum"),
            exclude_min=bool(node.get("exclusiveMinimum")),
            exclude_max=bool(node.get("exclusiveMaximum")),
            allow_nan=False,
            allow_infinity=False,
        ) | st.integers(int(node.get("minimum", 0)) + 1, 2**53)
    if kind == "string":
        return _string(node)
    if kind == "array":
        return _array(node, path, field)
    if kind == "object":
        return _object(node, path, field)
    raise ValueError(f"{path}: no type in {sorted(node)}")


def _int_or_string(node: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    pattern = node.get("pattern")
    texts: st.SearchStrategy[str] = st.text(max_size=TEXT_CAP)
    if pattern:
        texts = st.from_regex(pattern, fullmatch=True) | st.sampled_from(EDGE_QUANTITIES)
    return st.integers(-(2**63), 2**63 - 1) | texts


def _string(node: Mapping[str, Any]) -> st.SearchStrategy[str]:
    low = node.get("minLength", 0)
    high = node.get("maxLength")
    if "pattern" in node:
        drawn = st.from_regex(node["pattern"], fullmatch=True)
        return drawn.filter(lambda s: low <= len(s) <= (high or len(s)))
    capped = st.text(min_size=low, max_size=min(high or TEXT_CAP, TEXT_CAP))
    if high is None:
        return capped
    return capped | st.text(min_size=high, max_size=high)  # exactly at the bound


def _array(node: Mapping[str, Any], path: str, field: str) -> st.SearchStrategy[list[Any]]:
    items_schema = node["items"]
    items = _strategy(items_schema, f"{path}[]", field)
    low, high = node.get("minItems", 0), node.get("maxItems", LIST_CAP)
    lists = st.lists(items, min_size=low, max_size=max(low, min(high, LIST_CAP)))
    if items_schema.get("type") == "string" and high > LIST_CAP:
        lists |= st.lists(items, min_size=high, max_size=high)  # exactly at maxItems
    return lists


def _object(node: Mapping[str, Any], path: str, field: str) -> st.SearchStrategy[dict[str, Any]]:
    properties = node.get("properties") or {}
    free = node.get("x-kubernetes-preserve-unknown-fields")
    if not properties and free:
        return _free_object(field)
    if "additionalProperties" in node:
        values = _strategy(node["additionalProperties"], f"{path}.*", field)
        keys = st.sampled_from(RESOURCE_NAMES) | st.text(min_size=1, max_size=20)
        low, high = node.get("minProperties", 0), node.get("maxProperties")
        maps = st.dictionaries(keys, values, min_size=low, max_size=max(low, min(high or 3, 3)))
        if high is not None and 3 < high <= AT_MAX_PROPERTIES_CAP:
            maps |= st.dictionaries(keys, values, min_size=high, max_size=high)  # at the bound
        return maps
    required = set(node.get("required") or ())
    strategies = {
        name: _strategy(sub, f"{path}.{name}".lstrip("."), name) for name, sub in properties.items()
    }
    declared = st.fixed_dictionaries(
        {name: s for name, s in strategies.items() if name in required},
        optional={name: s for name, s in strategies.items() if name not in required},
    )
    if not free:
        return declared
    return st.tuples(_free_object(field), declared).map(lambda pair: {**pair[0], **pair[1]})


def _json(keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Small JSON: edge numbers, Unicode, lists and objects, a few levels deep."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**63 - 1)
        | st.sampled_from([0, -1, 1, 2**31, 65535, 65536])
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
        | st.sampled_from(WORDS)
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
        max_leaves=6,
    )


def _free_object(field: str) -> st.SearchStrategy[dict[str, Any]]:
    """Empty half the time: with a dozen such blocks, a spec would otherwise almost always
    carry one the API server refuses, and the paths past a valid Deployment (placement,
    KEDA, mesh) would rarely be reached."""
    keys = st.sampled_from(KNOWN_KEYS.get(field, ()) + WORDS) | st.text(min_size=1, max_size=12)
    return st.just({}) | st.dictionaries(keys, _json(keys), min_size=1, max_size=4)
