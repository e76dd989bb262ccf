"""The Helm chart without a cluster: its schema and values, the one RBAC data file, what
`helm template` renders (with the pinned helm), the dashboard and alerts, and that the static
manifests in manifests/operator are exactly the chart's rendering."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml
from cryptography import x509
from prometheus_client import REGISTRY

from agentfleet.api import constants as c
from agentfleet.render.children import CHILD_KINDS
from agentfleet.telemetry import metrics as operator_metrics
from tests.unit.conftest import ROOT

CHART = ROOT / "charts" / "agentfleet"
ALL_OPTIONS = CHART / "ci" / "all-options-values.yaml"
OPTIONAL_GROUPS = ("keda", "istio", "gatewayApi", "multicluster", "placement")
RULE_KEYS = {"apiGroups", "resources", "verbs"}


@pytest.fixture(scope="session")
def helm() -> Path:
    """The pinned helm the local control plane builds (once, cached)."""
    from agentfleet_dev import build

    return build.ensure(build.HELM, lambda m: print(m, file=sys.stderr)) / "bin" / "helm"


def run_helm(helm: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def render(helm: Path, *args: str, namespace: str = "agentfleet-system") -> list[dict[str, Any]]:
    out = run_helm(helm, "template", "agentfleet", str(CHART), "-n", namespace, *args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}: {[o['kind'] for o in objects]}"
    return found[0]


def values_yaml() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return loaded


@cache
def rbac_data() -> dict[str, list[dict[str, Any]]]:
    loaded: dict[str, list[dict[str, Any]]] = yaml.safe_load(
        (CHART / "files" / "rbac.yaml").read_text()
    )
    return loaded


def policy_rule(rule: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rule.items() if k != "requires"}


# --- the CRD and the values ----------------------------------------------------------------


def test_chart_crd_is_the_generated_crd() -> None:
    chart_crd = (CHART / "crds" / f"{c.CRD_NAME}.yaml").read_bytes()
    assert chart_crd == (ROOT / "crds" / f"{c.CRD_NAME}.yaml").read_bytes(), "run `make manifests`"


def test_helm_show_crds_prints_the_crd_the_readme_upgrades_with(helm: Path) -> None:
    shown = run_helm(helm, "show", "crds", str(CHART)).stdout
    assert shown.strip() == (CHART / "crds" / f"{c.CRD_NAME}.yaml").read_text().strip()


def merged(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of user values over the chart's values.yaml."""
    result = dict(defaults)
    for key, value in overrides.items():
        base = result.get(key)
        both_maps = isinstance(base, dict) and isinstance(value, dict)
        result[key] = merged(base, value) if both_maps else value  # type: ignore[arg-type]
    return result


@pytest.mark.parametrize("values_file", [None, ALL_OPTIONS], ids=["defaults", "all-options"])
def test_values_match_the_schema(values_file: Path | None) -> None:
    values = values_yaml()
    if values_file:
        values = merged(values, yaml.safe_load(values_file.read_text()))
    validator = jsonschema_rs.Draft7Validator(schema())
    assert [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(values)] == []


# Kubernetes types passed through as they are: the API server validates them on apply.
PASS_THROUGH = {
    "definitions.podSecurityContext",
    "definitions.securityContext",
    "definitions.env.items",
}


def objects_with_properties(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if "properties" in node:
            yield path, node
        for key, child in node.items():
            yield from objects_with_properties(child, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for child in node:
            yield from objects_with_properties(child, path)


def test_schema_is_draft_07_and_refuses_unknown_keys() -> None:
    assert schema()["$schema"] == "http://json-schema.org/draft-07/schema#"
    loose = [
        path
        for path, node in objects_with_properties(schema())
        if path not in PASS_THROUGH and node.get("additionalProperties") is not False
    ]
    assert loose == []


def schema_keys(node: dict[str, Any], definitions: dict[str, Any], prefix: str = "") -> set[str]:
    if "$ref" in node:
        node = definitions[node["$ref"].rsplit("/", 1)[1]]
    if node.get("additionalProperties") is not False or "properties" not in node:
        return set()
    keys = set()
    for key, child in node["properties"].items():
        keys.add(prefix + key)
        keys |= schema_keys(child, definitions, f"{prefix}{key}.")
    return keys


def value_keys(values: dict[str, Any], strict: set[str], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in values.items():
        keys.add(prefix + key)
        if isinstance(value, dict) and any(k.startswith(f"{prefix}{key}.") for k in strict):
            keys |= value_keys(value, strict, f"{prefix}{key}.")
    return keys


def test_every_schema_key_has_a_default_in_values_yaml() -> None:
    """The schema refuses what values.yaml does not define; values.yaml documents every key."""
    strict = schema_keys(schema(), schema()["definitions"]) - {"global"}
    assert value_keys(values_yaml(), strict) == strict


# --- RBAC: one data file ---------------------------------------------------------------------


def test_rbac_data_file_has_the_documented_shape() -> None:
    data = rbac_data()
    assert set(data) == {"core", *OPTIONAL_GROUPS, "ownNamespace", "clusterScoped"}
    for group, rules in data.items():
        assert rules or group in OPTIONAL_GROUPS, group  # optional: empty until its kinds exist
        for rule in rules:
            allowed = RULE_KEYS | ({"requires"} if group == "clusterScoped" else set())
            assert RULE_KEYS <= set(rule) <= allowed, (group, rule)
            assert rule.get("requires", "keda") in OPTIONAL_GROUPS, (group, rule)


def all_rules() -> list[dict[str, Any]]:
    return [rule for rules in rbac_data().values() for rule in rules]


def test_rbac_grants_no_secrets_wildcards_or_escalation() -> None:
    for rule in all_rules():
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"], rule
        assert "secrets" not in rule["resources"], rule
        assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"])
        assert not {"rbac.authorization.k8s.io", "certificates.k8s.io"} & set(rule["apiGroups"])
        assert not any(r.endswith(("/exec", "/token", "/proxy")) for r in rule["resources"])


CLUSTER_SCOPED = {
    ("", "namespaces"),
    ("", "nodes"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
}


def test_cluster_scoped_rules_are_only_in_cluster_scoped() -> None:
    for group, rules in rbac_data().items():
        for rule in rules:
            pairs = {(g, r) for g in rule["apiGroups"] for r in rule["resources"]}
            if group == "clusterScoped":
                assert pairs <= CLUSTER_SCOPED, rule
            else:
                assert not pairs & CLUSTER_SCOPED, (group, rule)


def granted(rules: list[dict[str, Any]], group: str, resource: str) -> set[str]:
    return {
        verb
        for rule in rules
        if group in rule["apiGroups"] and resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_rules_cover_the_operators_table_of_child_kinds() -> None:
    """children.CHILD_KINDS is the one table of what an agent owns: each kind is watched,
    applied (server-side apply is a patch) and pruned, with the rules of its RBAC group."""
    data = rbac_data()
    needed = {"get", "list", "watch", "create", "patch", "delete"}
    for row in CHILD_KINDS:
        assert needed <= granted(data[row.rbac_group], row.group, row.plural), row.kind
    owned = {(row.group, row.plural) for row in CHILD_KINDS}
    for rule in data["core"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                ours = group == c.GROUP or resource == "events"
                assert ours or (group, resource) in owned, f"core grants {resource}: no child kind"


def test_rules_cover_the_aiagent_events_and_discovery() -> None:
    core, cluster = rbac_data()["core"], rbac_data()["clusterScoped"]
    assert {"get", "list", "watch"} <= granted(core, c.GROUP, c.PLURAL)
    assert "patch" in granted(core, c.GROUP, f"{c.PLURAL}/status")
    assert "create" in granted(core, "", "events")  # kube.post_event
    assert {"get", "list", "watch"} <= granted(
        cluster, "apiextensions.k8s.io", "customresourcedefinitions"
    )
    assert {"get", "list", "watch"} <= granted(cluster, "", "namespaces")


# --- helm lint and template -------------------------------------------------------------------


@pytest.mark.parametrize("values_file", [None, ALL_OPTIONS], ids=["defaults", "all-options"])
def test_helm_lint_strict_passes(helm: Path, values_file: Path | None) -> None:
    extra = ["-f", str(values_file)] if values_file else []
    run_helm(helm, "lint", "--strict", str(CHART), *extra)


@pytest.mark.parametrize(
    ("flag", "named"),
    [
        ("operator.wrokers=3", "'wrokers' not allowed"),
        ("operator.workers=many", "/operator/workers"),
        ("operator.workers=0", "/operator/workers"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("watchNamespaces[0]=Team_A", "/watchNamespaces/0"),
        ("operator.metricsPort=70000", "/operator/metricsPort"),
        ("metrics.prometheusRule.severity=page", "/metrics/prometheusRule/severity"),
        ("metrics.serviceMonitor.interval=often", "/metrics/serviceMonitor/interval"),
        ("rbac.keda=maybe", "/rbac/keda"),
        ("nodeAgent.tolerations[0].operator=Sometimes", "/nodeAgent/tolerations/0/operator"),
        ("operator.resources.requests.cpu=lots", "/operator/resources/requests/cpu"),
    ],
)
def test_bad_value_is_refused_naming_it(helm: Path, flag: str, named: str) -> None:
    proc = run_helm(helm, "template", "x", str(CHART), "--set", flag, check=False)
    assert proc.returncode != 0
    assert "don't meet the specifications of the schema" in proc.stderr
    assert named in proc.stderr, proc.stderr


def test_defaults_render_only_the_operator(helm: Path) -> None:
    kinds = sorted(o["kind"] for o in render(helm))
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Role",  # the operator's own namespace: its shard claim Lease
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]


def test_all_options_render_every_optional_object(helm: Path) -> None:
    kinds = {o["kind"] for o in render(helm, "-f", str(ALL_OPTIONS))}
    assert kinds == {
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
        "DaemonSet",
        "ServiceMonitor",
        "PrometheusRule",
        "ConfigMap",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "Certificate",  # cert-manager's, for the API's serving certificate
    }


def expected_rules(scope: str, **toggles: bool) -> list[dict[str, Any]]:
    on = {group: toggles.get(group, True) for group in OPTIONAL_GROUPS}
    data = rbac_data()
    namespaced = data["core"] + [r for g in OPTIONAL_GROUPS if on[g] for r in data[g]]
    cluster = [policy_rule(r) for r in data["clusterScoped"] if on.get(r.get("requires", ""), True)]
    return {"namespaced": namespaced, "cluster": cluster, "all": namespaced + cluster}[scope]


def test_cluster_wide_rbac_is_exactly_the_data_file(helm: Path) -> None:
    objects = render(helm)
    role = one(objects, "ClusterRole")
    assert role["rules"] == expected_rules("all")
    binding = one(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    account = one(objects, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "agentfleet-operator", "namespace": "agentfleet-system"}
    ]
    assert account["metadata"]["name"] == "agentfleet-operator"


def test_optional_groups_are_toggled_by_values(helm: Path) -> None:
    off = "rbac.keda=false,rbac.istio=false,rbac.gatewayApi=false,rbac.placement=false"
    role = one(render(helm, "--set", off), "ClusterRole")
    assert role["rules"] == expected_rules(
        "all", keda=False, istio=False, gatewayApi=False, placement=False
    )
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert not resources & {"scaledobjects", "virtualservices", "httproutes", "pods", "nodes"}


def test_watch_namespaces_bind_the_namespaced_rules_in_each(helm: Path) -> None:
    objects = render(helm, "--set", "watchNamespaces={team-a,team-b}")
    roles = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ClusterRole"}
    assert roles["agentfleet-operator"]["rules"] == expected_rules("cluster")
    assert roles["agentfleet-operator-namespaced"]["rules"] == expected_rules("namespaced")
    cluster_bindings = [o for o in objects if o["kind"] == "ClusterRoleBinding"]
    assert [b["roleRef"]["name"] for b in cluster_bindings] == ["agentfleet-operator"]
    bindings = [
        o for o in objects if o["kind"] == "RoleBinding" and o["roleRef"]["kind"] == "ClusterRole"
    ]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    assert {b["roleRef"]["name"] for b in bindings} == {"agentfleet-operator-namespaced"}
    args = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:3] == ["run", "--namespace=team-a", "--namespace=team-b"]


def test_operator_deployment_is_restricted_and_recreated(helm: Path) -> None:
    objects = render(helm, "--set", "operator.extraArgs={--future-flag=1},operator.verbose=true")
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["args"] == [
        "run",
        "--workers=4",
        "--metrics-address=0.0.0.0",
        "--metrics-port=8080",
        "--health-port=8081",
        "--cluster-domain=cluster.local",
        "--prometheus-address=http://prometheus-operated.monitoring.svc:9090",
        "--mesh-mode=none",
        "--mesh-trust-domain=cluster.local",
        "--mesh-metrics-namespace=monitoring",
        "--agent-tracing-sampling-percent=1",
        "--tracing-sampling-percent=100",
        "--placement-policy=spread",
        "--node-failure-seconds=30",
        "--log-format=json",
        "--log-level=info",
        "--verbose",
        "--future-flag=1",
    ]
    probe = container["livenessProbe"]["httpGet"]
    assert probe == {"path": "/healthz", "port": "http-health"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http-metrics": 8080, "http-health": 8081}
    assert container["resources"]["limits"]["memory"] == "512Mi"
    service = one(objects, "Service")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_image_by_digest_wins_over_tag(helm: Path) -> None:
    digest = "sha256:" + "ab" * 32
    deployment = one(render(helm, "--set", f"image.tag=9.9.9,image.digest={digest}"), "Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"ghcr.io/agentfleet/operator@{digest}"


def test_service_monitor_needs_the_metrics_service(helm: Path) -> None:
    proc = run_helm(
        helm,
        "template",
        "x",
        str(CHART),
        "--set",
        "metrics.serviceMonitor.enabled=true,metrics.service.enabled=false",
        check=False,
    )
    assert proc.returncode != 0
    assert "metrics.serviceMonitor.enabled needs metrics.service.enabled" in proc.stderr


def test_network_policy_allows_only_metrics_peers_and_the_api_server(helm: Path) -> None:
    policy = one(render(helm, "--set", "networkPolicy.enabled=true"), "NetworkPolicy")
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = spec["ingress"]
    assert {p["port"] for p in ingress["ports"]} == {8080, 8081}
    assert ingress["from"] == values_yaml()["networkPolicy"]["metricsFrom"]
    (egress,) = spec["egress"]  # DNS off, no extra rules: the API server only
    assert {p["port"] for p in egress["ports"]} == {443, 6443}


def test_node_agent_and_api_have_their_own_minimal_identities(helm: Path) -> None:
    objects = render(helm, "--set", "nodeAgent.enabled=true,api.enabled=true")
    daemonset = one(objects, "DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "agentfleet-node-agent"
    (container,) = pod["containers"]
    assert container["args"][:2] == ["node-agent", "--node-name=$(NODE_NAME)"]
    env = {e["name"]: e.get("valueFrom") for e in container["env"]}
    assert env["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-health"}
    assert {t["key"] for t in pod["tolerations"]} == {"nvidia.com/gpu", "amd.com/gpu"}
    node_role = one(objects, "ClusterRole", "agentfleet-node-agent")
    assert node_role["rules"] == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]}
    ]
    lease_role = one(objects, "Role", "agentfleet-node-agent")
    assert lease_role["metadata"]["namespace"] == "agentfleet-system"
    assert [r["resources"] for r in lease_role["rules"]] == [["leases"]]
    policy = one(objects, "ValidatingAdmissionPolicy")
    (condition,) = policy["spec"]["matchConditions"]
    assert (
        "system:serviceaccount:agentfleet-system:agentfleet-node-agent" in condition["expression"]
    )

    api = one(objects, "Deployment", "agentfleet-api")
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert container["args"][:4] == ["api", "--host=0.0.0.0", "--port=9000", "--grpc-port=50051"]
    probe = {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert container["readinessProbe"]["httpGet"] == probe
    api_role = one(objects, "ClusterRole", "agentfleet-api")
    assert granted(api_role["rules"], "authentication.k8s.io", "tokenreviews") == {"create"}
    assert granted(api_role["rules"], "authorization.k8s.io", "subjectaccessreviews") == {"create"}
    assert granted(api_role["rules"], "", "pods") == {"get", "list", "watch"}
    assert "secrets" not in {r for rule in api_role["rules"] for r in rule["resources"]}


def api_objects(helm: Path, *args: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    objects = render(helm, "--set", "api.enabled=true", *args)
    return one(objects, "Deployment", next(
        o["metadata"]["name"] for o in objects
        if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-api")
    )), objects  # fmt: skip


def test_the_api_serves_tls_from_a_mounted_secret_and_grpc_behind_its_service(
    helm: Path,
) -> None:
    deployment, objects = api_objects(helm)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "https": 9000,
        "grpc": 50051,
    }
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["tls"] == "/etc/agentfleet/tls"
    assert volumes["tls"]["secret"]["secretName"] == "agentfleet-api-tls"
    assert volumes["client-ca"]["configMap"]["name"] == "kube-root-ca.crt"  # the cluster's CA
    service = one(objects, "Service", "agentfleet-api")
    grpc_port = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert (grpc_port["appProtocol"], grpc_port["targetPort"]) == ("grpc", "grpc")
    # No cert-manager: Helm generates the certificate, for the Service's DNS names.
    secret = one(objects, "Secret", "agentfleet-api-tls")
    assert secret["type"] == "kubernetes.io/tls"
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {
        "agentfleet-api",
        "agentfleet-api.agentfleet-system",
        "agentfleet-api.agentfleet-system.svc",
        "agentfleet-api.agentfleet-system.svc.cluster.local",
    }
    # With cert-manager: a Certificate fills the same Secret, and nothing else does.
    _, managed = api_objects(
        helm, "--set", "api.tls.certManager.enabled=true,api.tls.certManager.issuerRef.name=ca"
    )
    certificate = one(managed, "Certificate")
    assert certificate["spec"]["secretName"] == "agentfleet-api-tls"
    assert certificate["spec"]["issuerRef"] == {
        "name": "ca",
        "kind": "Issuer",
        "group": "cert-manager.io",
    }
    assert not [o for o in managed if o["kind"] == "Secret"]
    refused = run_helm(
        helm, "template", "agentfleet", str(CHART), "--set",
        "api.enabled=true,api.tls.certManager.enabled=true", check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "api.tls.certManager.issuerRef.name" in refused.stderr
    # gRPC off: no port, no client CA.
    http_only, _ = api_objects(helm, "--set", "api.grpcPort=0")
    (container,) = http_only["spec"]["template"]["spec"]["containers"]
    assert [p["name"] for p in container["ports"]] == ["https"]
    assert not any(a.startswith("--client-ca-file") for a in container["args"])


@pytest.mark.parametrize("values_file", [None, ALL_OPTIONS], ids=["defaults", "all-options"])
def test_the_api_command_parses_every_argument_the_chart_renders(
    helm: Path, values_file: Path | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the chart starts is what `agentfleet api` accepts, with the files it mounts."""
    from typer.testing import CliRunner

    from agentfleet import main
    from agentfleet.frontends import serve

    deployment, objects = api_objects(helm, *(["-f", str(values_file)] if values_file else []))
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    secret = next((o for o in objects if o["kind"] == "Secret"), None)
    files = {"tls.crt": b"certificate", "tls.key": b"key", "ca.crt": b"client CA"}
    if secret:  # the generated certificate, as the Pod would see it
        files |= {k: base64.b64decode(v) for k, v in secret["data"].items()}
    args = []
    for arg in container["args"]:
        if arg.startswith(("--tls-cert-file=", "--tls-private-key-file=", "--client-ca-file=")):
            flag, path = arg.split("=", 1)
            local = tmp_path / flag.strip("-")
            local.write_bytes(files[Path(path).name])
            arg = f"{flag}={local}"
        args.append(arg)
    seen: list[Any] = []

    async def started(settings: Any, listen: Any) -> None:
        seen.append((settings, listen))

    monkeypatch.setattr(serve, "serve", started)
    result = CliRunner().invoke(main.app, args)
    assert result.exit_code == 0, result.output
    ((settings, listen),) = seen
    values = yaml.safe_load(values_file.read_text()) if values_file else {}
    api = {**values_yaml()["api"], **values.get("api", {})}
    assert (listen.port, listen.grpc_port) == (api["port"], api["grpcPort"])
    assert listen.tls is not None and listen.tls.client_ca
    assert settings.token_audience == api["tokenAudience"]
    assert settings.max_body_bytes == api["maxBodyBytes"]
    assert settings.max_deploy_waits == api["maxDeployWaits"]


# --- dashboard and alerts use the operator's real metric names ---------------------------------

# Referenced before the operator exports them; the lead adds them (then delete them here).
PENDING_METRICS: set[str] = set()
PROMQL_FUNCTIONS = {"sum", "max", "rate", "histogram_quantile", "label_values"}


def exported_metric_names() -> set[str]:
    """Sample names the operator's metrics module registers (counters end in _total, ...)."""
    assert operator_metrics.API_WRITES  # the module registers its metrics on import
    names = {"up"}  # Prometheus's own per-target series
    for family in REGISTRY.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
        for suffix in suffixes.get(family.type, [""]):
            names.add(family.name + suffix)
    return names


def metric_names(promql: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', promql)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    without_grouping = re.sub(r"\b(by|without)\s*\([^)]*\)", "", without_ranges)
    without_label_args = re.sub(r",\s*\w+\s*\)", ")", without_grouping)  # label_values(m, l)
    tokens = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_label_args))
    return {t for t in tokens if t not in PROMQL_FUNCTIONS}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CHART / "files/dashboards/agentfleet.json").read_text())
    return loaded


def dashboard_queries() -> list[str]:
    queries = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    queries += [v["definition"] for v in dashboard()["templating"]["list"] if "definition" in v]
    return queries


def alert_queries(helm: Path) -> list[str]:
    rule = one(render(helm, "--set", "metrics.prometheusRule.enabled=true"), "PrometheusRule")
    return [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]


def test_dashboard_and_alerts_query_only_metrics_the_operator_exports(helm: Path) -> None:
    known = exported_metric_names() | PENDING_METRICS
    for query in dashboard_queries() + alert_queries(helm):
        assert metric_names(query) <= known, query


def test_pending_metrics_are_still_pending() -> None:
    exported = exported_metric_names()
    assert not PENDING_METRICS & exported, "the operator exports it now: drop it from PENDING"


def test_dashboard_has_the_panels_the_fleet_needs() -> None:
    board = dashboard()
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    queries = " ".join(dashboard_queries())
    for needed in (
        "agentfleet_agents",
        "controller_runtime_reconcile_total",
        "histogram_quantile(0.5",
        "histogram_quantile(0.99",
        "controller_runtime_reconcile_time_seconds_bucket",
        "agentfleet_api_writes_total",
        "workqueue_depth",
    ):
        assert needed in queries, needed
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert all('namespace=~"$namespace"' in t["expr"] for t in panel["targets"])


def test_alerts_cover_errors_queue_depth_and_stalled_agents(helm: Path) -> None:
    rule = one(render(helm, "--set", "metrics.prometheusRule.enabled=true"), "PrometheusRule")
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert set(alerts) >= {
        "AgentfleetReconcileErrors",
        "AgentfleetWorkQueueDepthHigh",
        "AgentfleetAgentsStalled",
    }
    stalled = alerts["AgentfleetAgentsStalled"]["expr"]
    assert (
        'agentfleet_agents{namespace="agentfleet-system", condition="Stalled", status="True"}'
        in (stalled)
    )
    assert "> 100" in alerts["AgentfleetWorkQueueDepthHigh"]["expr"]


def test_dashboard_configmap_is_labelled_for_grafana(helm: Path) -> None:
    config_map = one(render(helm, "--set", "grafanaDashboard.enabled=true"), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["agentfleet.json"]) == dashboard()


# --- manifests/operator is the chart's rendering -----------------------------------------------

GENERATED = [
    "manifests/operator/kustomization.yaml",
    "manifests/operator/namespace.yaml",
    "manifests/operator/rbac.yaml",
    "manifests/operator/service.yaml",
    "manifests/operator/deployment.yaml",
    "argocd/argocd-cm.yaml",
    f"charts/agentfleet/crds/{c.CRD_NAME}.yaml",
]


def test_static_manifests_are_rendered_from_the_chart(helm: Path, tmp_path: Path) -> None:
    subprocess.run(
        [str(ROOT / "hack" / "chart.sh"), "manifests", str(tmp_path)],
        env={"HELM": str(helm), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        timeout=120,
    )
    rendered = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert rendered == sorted(GENERATED)
    stale = [f for f in GENERATED if (tmp_path / f).read_text() != (ROOT / f).read_text()]
    assert stale == [], "run `make manifests`"
    on_disk = sorted(p.name for p in (ROOT / "manifests" / "operator").iterdir())
    assert on_disk == sorted(Path(f).name for f in GENERATED if f.startswith("manifests/"))


def test_static_manifests_keep_the_identity_the_integration_tests_use() -> None:
    """tests/conftest.py applies namespace.yaml and rbac.yaml and runs the operator with a token
    of agentfleet-system/agentfleet-operator."""
    operator = ROOT / "manifests" / "operator"
    (namespace,) = yaml.safe_load_all((operator / "namespace.yaml").read_text())
    assert namespace["metadata"]["name"] == "agentfleet-system"
    rbac = [d for d in yaml.safe_load_all((operator / "rbac.yaml").read_text()) if d]
    accounts = [d["metadata"] for d in rbac if d["kind"] == "ServiceAccount"]
    assert accounts[0]["name"] == "agentfleet-operator"
    assert accounts[0]["namespace"] == "agentfleet-system"
    assert {d["kind"] for d in rbac} == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    }


def test_autoscaling_defaults_reach_the_operator_as_a_file(helm: Path) -> None:
    objects = render(helm, "--set", "autoscaling.defaults.coding.minReplicas=10")
    config_map = one(objects, "ConfigMap")
    assert yaml.safe_load(config_map["data"]["autoscaling-defaults.yaml"]) == {
        "coding": {"minReplicas": 10}
    }
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "--autoscaling-defaults=/etc/agentfleet/autoscaling-defaults.yaml" in container["args"]
    assert {
        "name": "autoscaling-defaults",
        "configMap": {"name": config_map["metadata"]["name"]},
    } in (pod["volumes"])


@pytest.mark.parametrize("values_file", [None, ALL_OPTIONS], ids=["defaults", "all-options"])
def test_the_operator_parses_every_argument_the_chart_renders(
    helm: Path, values_file: Path | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chart's values and `agentfleet run` share one description (api/config.py): every
    argument the chart renders is a flag of the real command, with the value the chart meant."""
    from typer.testing import CliRunner

    from agentfleet import main
    from agentfleet.runtime import runner

    objects = render(helm, *(["-f", str(values_file)] if values_file else []))
    deployment = one(objects, "Deployment", "fleet-operator" if values_file else None)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = list(container["args"])
    config_maps = {
        key: text for o in objects if o["kind"] == "ConfigMap" for key, text in o["data"].items()
    }
    for i, arg in enumerate(args):  # the mounted ConfigMaps, as local files
        flag, _, path = arg.partition("=")
        if flag in ("--autoscaling-defaults", "--traffic-defaults"):
            local = tmp_path / Path(path).name
            local.write_text(config_maps[local.name])
            args[i] = f"{flag}={local}"
    seen: list[Any] = []
    monkeypatch.setattr(runner, "run", lambda config, verbose: seen.append(config))
    result = CliRunner().invoke(main.app, args)
    assert result.exit_code == 0, result.output
    (config,) = seen
    values = yaml.safe_load(values_file.read_text()) if values_file else {}
    operator = {**values_yaml()["operator"], **values.get("operator", {})}
    assert config.workers == operator["workers"]
    assert config.metrics_port == operator["metricsPort"]
    assert config.health_port == operator["healthPort"]
    assert config.render.cluster_domain == operator["clusterDomain"]
    assert config.namespaces == tuple(values.get("watchNamespaces", ()))
    mesh = {**values_yaml()["mesh"], **values.get("mesh", {})}
    assert config.render.mesh_mode.value == mesh["mode"]
    assert config.render.mesh_default_deny == mesh["defaultDeny"]
    autoscaling = {**values_yaml()["autoscaling"], **values.get("autoscaling", {})}
    assert set(config.render.autoscaling_defaults) == set(autoscaling["defaults"])
    assert set(config.render.traffic_defaults) == set(mesh.get("trafficDefaults", {}))
    assert config.render.mesh_tracing_provider == mesh.get("tracingProvider", "")
    tracing = {**values_yaml()["tracing"], **values.get("tracing", {})}
    assert config.render.agent_tracing_endpoint == tracing["agentEndpoint"]
    assert config.render.agent_tracing_sampling_percent == tracing["agentSamplingPercent"]
    assert config.tracing_endpoint == tracing["operatorEndpoint"]
    assert config.tracing_sampling_percent == tracing["operatorSamplingPercent"]
    assert (config.log_format, config.log_level) == (operator["logFormat"], operator["logLevel"])
