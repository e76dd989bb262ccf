"""The mesh on a real API server, judged by Istio's own analyzer.

The seven example agents with their mesh settings (istio/fleet.yaml), in ambient and in
sidecar mode, with allowFrom, traffic rules, fault injection and the namespace default-deny:
every object the operator generates must be accepted by the real Istio and Gateway API CRD
schemas, owned correctly, and pass `istioctl analyze` on the live cluster (offline file mode
misses reference errors), except for findings listed with their reason in
istio/analyze-allowlist.yaml. Then: mode switches, shared objects, policies that follow
their callers, and the Istio CRDs going away and coming back.

The cluster runs no istiod, CNI or injector, so where Istio's data plane would mark pods the
tests do it themselves: the Istio CNI node agent annotates each ambient pod it captures
(`ambient.istio.io/redirection: enabled`), which is how the analyzer knows a pod is in the
mesh. Sidecar pods are recognised by their `sidecar.istio.io/inject: "true"` label.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentfleet.api import constants as c
from agentfleet.render.children import CHILD_KINDS
from tests.conftest import ROOT, SUMMARY, Cluster, Operator, eventually
from tests.unit.render.fleet import generator

pytestmark = pytest.mark.cluster

MESH_ROWS = [row for row in CHILD_KINDS if row.feature == c.COND_MESH_READY]
MESH_RESOURCES = ",".join(row.resource for row in MESH_ROWS)
ALLOWLIST = ROOT / "istio" / "analyze-allowlist.yaml"
PEER_AUTHENTICATION_CRD = "peerauthentications.security.istio.io"
REDIRECTION = "ambient.istio.io/redirection"


@pytest.fixture(scope="module")
def istioctl(cluster: Cluster) -> Path:
    from agentfleet_dev import build

    return build.toolchain(lambda m: print(m, file=sys.stderr)).bin["istioctl"]


@pytest.fixture(scope="module")
def scrapers(cluster: Cluster) -> str:
    """The operator's default metrics-scraper namespace: the analyzer checks that namespaces
    named by a policy exist (IST0101), and Prometheus would live there."""
    if cluster.kubectl("get", "namespace", "monitoring", check=False).returncode != 0:
        cluster.kubectl("create", "namespace", "monitoring")
    return "monitoring"


# --- helpers ----------------------------------------------------------------------------------


def fleet(mode: str, namespace: str, chaos: str | None = None) -> list[dict[str, Any]]:
    """The example agents in `namespace`. Their autoscaling is left out: this is about the
    mesh, and a fixed replica count keeps the pods the analyzer looks at steady. Every agent
    is traced (a Telemetry object for its proxy), and in sidecar mode the discovery agent,
    a gRPC registry, runs proxyless gRPC."""
    bodies = generator().fleet_agents(mode, chaos)
    for body in bodies:
        body["metadata"]["namespace"] = namespace
        body["spec"].pop("autoscaling", None)
        body["spec"]["observability"] = {"tracing": {"samplingPercent": 10}}
        if mode == "sidecar" and body["metadata"]["name"] == "discovery":
            body["spec"]["mesh"]["grpc"] = "proxyless"
    return bodies


def agent(name: str, namespace: str, mesh: dict[str, Any] | None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"agentType": "coding", "image": "example.com/coding:1", "replicas": 1, **spec},
    }
    if mesh is not None:
        body["spec"]["mesh"] = mesh
    return body


def apply(cluster: Cluster, *bodies: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(bodies))


def get_json(cluster: Cluster, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)
    return result


def mesh_objects(cluster: Cluster, namespace: str) -> dict[tuple[str, str], dict[str, Any]]:
    items = get_json(cluster, MESH_RESOURCES, "-n", namespace)["items"]
    return {(o["kind"], o["metadata"]["name"]): o for o in items}


def conditions(cluster: Cluster, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    body = get_json(cluster, f"{c.PLURAL}.{c.GROUP}", name, "-n", namespace)
    status = body.get("status") or {}
    assert status.get("observedGeneration") == body["metadata"]["generation"], status
    return {cond["type"]: cond for cond in status.get("conditions") or []}


def mesh_ready(
    cluster: Cluster, namespace: str, name: str, status: str = "True", reason: str = "Applied"
) -> dict[str, Any]:
    def check() -> dict[str, Any]:
        cond = conditions(cluster, namespace, name).get(c.COND_MESH_READY, {})
        assert (cond.get("status"), cond.get("reason")) == (status, reason), cond
        return cond

    return eventually(check, what=f"{namespace}/{name} {c.COND_MESH_READY}={status} ({reason})")


def agent_uids(cluster: Cluster, namespace: str) -> dict[str, str]:
    items = get_json(cluster, f"{c.PLURAL}.{c.GROUP}", "-n", namespace)["items"]
    return {a["metadata"]["name"]: a["metadata"]["uid"] for a in items}


def pods_in_mode(cluster: Cluster, namespace: str, bodies: list[dict[str, Any]], mode: str) -> int:
    """Wait until every agent runs exactly its replicas, all with the mode's pod labels."""
    label = {
        "ambient": (c.LABEL_ISTIO_DATAPLANE_MODE, "ambient"),
        "sidecar": (c.LABEL_ISTIO_SIDECAR_INJECT, "true"),
    }[mode]

    def settled() -> int:
        pods = get_json(cluster, "pods", "-n", namespace)["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        for body in bodies:
            name = body["metadata"]["name"]
            mine = [p for p in live if p["metadata"]["labels"].get(c.LABEL_INSTANCE) == name]
            assert len(mine) == body["spec"]["replicas"], (name, len(mine))
            assert all(p["metadata"]["labels"].get(label[0]) == label[1] for p in mine), name
        return len(live)

    return eventually(settled, timeout=120, what=f"the agents' pods in {mode} mode")


def act_as_istio_cni(cluster: Cluster, namespace: str) -> None:
    """What Istio's CNI node agent does to each ambient pod it captures."""
    cluster.kubectl(
        "annotate",
        "pods",
        "-n",
        namespace,
        "-l",
        f"{c.LABEL_ISTIO_DATAPLANE_MODE}=ambient",
        f"{REDIRECTION}=enabled",
        "--overwrite",
    )


def analyze(cluster: Cluster, istioctl: Path, namespace: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [
            str(istioctl),
            "analyze",
            "--kubeconfig",
            cluster.kubeconfig,
            "-n",
            namespace,
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout.strip().startswith("["), f"istioctl analyze failed: {proc.stderr}"
    findings: list[dict[str, Any]] = json.loads(proc.stdout)
    return findings


def allow_listed(cluster: Cluster, finding: dict[str, Any]) -> dict[str, Any] | None:
    """The allow-list entry that covers the finding, if any (its `when` checked live)."""
    kind, _, where = finding["origin"].partition(" ")
    namespace, _, name = where.partition("/")
    for entry in yaml.safe_load(ALLOWLIST.read_text()):
        assert entry.get("reason"), f"allow-list entry without a reason: {entry}"
        if entry["code"] != finding["code"] or entry["origin"] != kind:
            continue
        if entry.get("when") == "agentScaledToZero":
            owner = name.removesuffix(".via-waypoint")
            deployment = get_json(cluster, "deployment", owner, "-n", namespace)
            if deployment["spec"].get("replicas") != 0:
                continue
        elif entry.get("when") == "targetRefs":
            spec = get_json(cluster, "telemetries.telemetry.istio.io", name, "-n", namespace)[
                "spec"
            ]
            if "selector" in spec or not spec.get("targetRefs"):
                continue
        elif entry.get("when"):
            raise AssertionError(f"unknown condition in the allow-list: {entry['when']}")
        return entry
    return None


def judged(cluster: Cluster, istioctl: Path, namespace: str) -> tuple[list[Any], list[Any]]:
    """(every finding, the findings no allow-list entry covers)."""
    findings = analyze(cluster, istioctl, namespace)
    return findings, [f for f in findings if allow_listed(cluster, f) is None]


def mesh_writes(operator: Operator) -> float:
    return sum(operator.total("agentfleet_api_writes_total", kind=row.kind) for row in MESH_ROWS)


def describe(findings: list[dict[str, Any]]) -> str:
    return "\n".join(f"{f['level']} [{f['code']}] ({f['origin']}) {f['message']}" for f in findings)


# --- the example fleet, judged ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["ambient", "sidecar"])
def test_example_fleet_passes_istioctl_analyze(
    cluster: Cluster,
    operator: Operator,
    namespace: str,
    istioctl: Path,
    scrapers: str,
    mode: str,
) -> None:
    bodies = fleet(mode, namespace, chaos="testing")
    before = mesh_writes(operator)
    apply(cluster, *bodies)
    for body in bodies:
        mesh_ready(cluster, namespace, body["metadata"]["name"])

    # Exactly what the renderers produce, each accepted by the real CRD schemas ...
    expected: dict[tuple[str, str], set[str]] = {}  # (kind, name) -> the agents owning it
    for parsed, objects in generator().fleet_objects(bodies):
        for obj in objects:
            if obj["kind"] in {row.kind for row in MESH_ROWS}:
                key = (obj["kind"], obj["metadata"]["name"])
                expected.setdefault(key, set()).add(parsed.metadata.name)
    live = mesh_objects(cluster, namespace)
    assert set(live) == set(expected)
    kinds = {kind for kind, _ in live}
    assert {"DestinationRule", "VirtualService", "Telemetry"} <= kinds
    if mode == "ambient":
        assert {"Gateway", "HTTPRoute", "GRPCRoute"} <= kinds
    else:
        assert not kinds & {"Gateway", "HTTPRoute", "GRPCRoute"}
    # Phase D's default: every agent with an L7 proxy has outlier detection, and retries
    # unless it turned them off (compliance: in ambient mode its timeout goes on Gateway API
    # routes; a sidecar's timeout is on a VirtualService anyway).
    for body in bodies:
        name, mesh = body["metadata"]["name"], body["spec"]["mesh"]
        if mode == "ambient" and mesh.get("waypoint") == "none":
            continue  # ztunnel only: no L7 rules
        assert ("DestinationRule", name) in live, name
        gateway_api = mode == "ambient" and name == "compliance"
        assert (("VirtualService", name) in live) != gateway_api, name

    # ... owned correctly: an agent's own objects by it (the controller), shared ones by
    # every agent using them and by none as the controller.
    uid_of = agent_uids(cluster, namespace)
    for key, obj in live.items():
        refs = obj["metadata"]["ownerReferences"]
        if key[1] in (c.NAMESPACE_DEFAULT_DENY, c.NAMESPACE_WAYPOINT):
            assert not any(ref.get("controller") for ref in refs), key
            users = {uid_of[name] for name in _users_of(key, bodies)}
            assert {ref["uid"] for ref in refs} == users, key
        else:
            assert [(r["name"], r["uid"], r.get("controller")) for r in refs] == [
                (next(iter(expected[key])), uid_of[next(iter(expected[key]))], True)
            ], key

    # An unchanged mesh fleet costs no write: resyncs (every ~10 s here) reconcile all seven
    # agents, whose shared objects every one of them renders, and find nothing to apply.
    writes, reconciles = mesh_writes(operator), operator.reconciles()
    eventually(
        lambda: operator.reconciles() >= reconciles + 2 * len(bodies),
        timeout=60,
        what="two resyncs of the fleet",
    )
    assert mesh_writes(operator) == writes

    pods = pods_in_mode(cluster, namespace, bodies, mode)
    if mode == "sidecar":  # the proxyless gRPC agent's pods ask for the grpc-agent template
        template = get_json(cluster, "deployment", "discovery", "-n", namespace)["spec"]["template"]
        assert template["metadata"]["annotations"]["inject.istio.io/templates"] == "grpc-agent"
        env = {e["name"]: e.get("value") for e in template["spec"]["containers"][0]["env"]}
        assert env["GRPC_XDS_BOOTSTRAP"] == "/etc/istio/proxy/grpc-bootstrap.json"
    if mode == "ambient":
        act_as_istio_cni(cluster, namespace)
    findings, unexpected = judged(cluster, istioctl, namespace)
    assert not unexpected, "istioctl analyze:\n" + describe(unexpected)
    SUMMARY.append(
        f"istioctl analyze ({mode}): {len(live)} Istio/Gateway API objects, {len(bodies)}"
        f" Services, {pods} pods; {len(findings)} finding(s), all allow-listed:"
        f" {sorted({f['code'] for f in findings})}; {writes - before:.0f} mesh applies"
        " to converge"
    )


def _users_of(key: tuple[str, str], bodies: list[dict[str, Any]]) -> set[str]:
    """The agents that use a shared object, read from the input: every agent in the mesh
    shares the default-deny policy; every ambient agent that neither chose another waypoint
    nor turned all its traffic rules off (retries and outlier detection are on by default)
    shares the namespace waypoint."""
    users = set()
    for body in bodies:
        mesh = body["spec"].get("mesh") or {}
        if key[0] == "AuthorizationPolicy" and mesh.get("mode", "none") != "none":
            users.add(body["metadata"]["name"])
        if key[0] == "Gateway" and mesh.get("mode") == "ambient":
            traffic = mesh.get("traffic") or {}
            all_off = all(
                (traffic.get(rule) or {}).get("enabled") is False
                for rule in ("retries", "outlierDetection")
            ) and not (traffic.get("timeout") or traffic.get("connectionPool"))
            waypoint = mesh.get("waypoint") or ("none" if all_off else "namespace")
            if waypoint == "namespace":
                users.add(body["metadata"]["name"])
    return users


def test_the_judge_fails_on_a_real_defect_and_accepts_an_idle_agent(
    cluster: Cluster, operator: Operator, namespace: str, istioctl: Path, scrapers: str
) -> None:
    """The analyzer, run this way, does see reference errors (a VirtualService to a host that
    does not exist), and the one allow-listed warning is accepted only where its condition
    holds: the agent scaled to zero, not the running one."""
    mesh = {"mode": "ambient", "allowFrom": [{"agentType": "coding"}]}
    apply(
        cluster,
        agent("idle", namespace, mesh, replicas=0),
        agent("busy", namespace, mesh, replicas=1),
    )
    for name in ("idle", "busy"):
        mesh_ready(cluster, namespace, name)
    eventually(
        lambda: len(get_json(cluster, "pods", "-n", namespace)["items"]) == 1,
        what="busy's pod",
    )
    act_as_istio_cni(cluster, namespace)
    broken = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "broken", "namespace": namespace},
        "spec": {
            "hosts": [f"missing.{namespace}.svc.cluster.local"],
            "http": [
                {"route": [{"destination": {"host": f"missing.{namespace}.svc.cluster.local"}}]}
            ],
        },
    }
    apply(cluster, broken)
    findings, unexpected = judged(cluster, istioctl, namespace)
    assert [(f["code"], f["origin"]) for f in unexpected] == [
        ("IST0101", f"VirtualService {namespace}/broken")
    ], describe(findings)
    idle = [f for f in findings if f["code"] == "IST0127"]
    assert [f["origin"] for f in idle] == [f"AuthorizationPolicy {namespace}/idle"]


# --- lifecycle --------------------------------------------------------------------------------


def kinds_of(cluster: Cluster, namespace: str) -> set[tuple[str, str]]:
    return set(mesh_objects(cluster, namespace))


def test_switching_mode_replaces_the_objects_and_none_removes_them_all(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    mesh: dict[str, Any] = {
        "mode": "ambient",
        "allowFrom": [{"namespace": "ci"}],
        "traffic": {"timeout": "20s"},
    }
    apply(cluster, agent("b", namespace, mesh))
    mesh_ready(cluster, namespace, "b")
    ambient = {
        ("PeerAuthentication", "b"),
        ("AuthorizationPolicy", "b"),
        ("AuthorizationPolicy", "b.via-waypoint"),
        ("AuthorizationPolicy", c.NAMESPACE_DEFAULT_DENY),
        ("Gateway", c.NAMESPACE_WAYPOINT),
        ("DestinationRule", "b"),  # the default outlier detection
        ("VirtualService", "b"),  # the timeout with the default retries
    }
    assert kinds_of(cluster, namespace) == ambient
    service = get_json(cluster, "service", "b", "-n", namespace)
    assert service["metadata"]["labels"][c.LABEL_ISTIO_USE_WAYPOINT] == c.NAMESPACE_WAYPOINT

    apply(cluster, agent("b", namespace, {**mesh, "mode": "sidecar"}))
    sidecar = {
        ("PeerAuthentication", "b"),
        ("AuthorizationPolicy", "b"),
        ("AuthorizationPolicy", c.NAMESPACE_DEFAULT_DENY),
        ("DestinationRule", "b"),
        ("VirtualService", "b"),
    }
    eventually(lambda: kinds_of(cluster, namespace) == sidecar, what="the sidecar-mode objects")
    mesh_ready(cluster, namespace, "b")
    service = get_json(cluster, "service", "b", "-n", namespace)
    assert c.LABEL_ISTIO_USE_WAYPOINT not in service["metadata"]["labels"]
    template = get_json(cluster, "deployment", "b", "-n", namespace)["spec"]["template"]
    assert template["metadata"]["labels"][c.LABEL_ISTIO_SIDECAR_INJECT] == "true"
    assert c.LABEL_ISTIO_DATAPLANE_MODE not in template["metadata"]["labels"]

    apply(cluster, agent("b", namespace, {**mesh, "mode": "none"}))
    eventually(lambda: kinds_of(cluster, namespace) == set(), what="no mesh objects at all")
    eventually(
        lambda: c.COND_MESH_READY not in conditions(cluster, namespace, "b"),
        what="MeshReady to go away with the mesh",
    )
    template = get_json(cluster, "deployment", "b", "-n", namespace)["spec"]["template"]
    assert not {c.LABEL_ISTIO_SIDECAR_INJECT, c.LABEL_ISTIO_DATAPLANE_MODE} & set(
        template["metadata"]["labels"]
    )
    get_json(cluster, "service", "b", "-n", namespace)  # the agent itself still runs


def test_defaults_give_every_mesh_agent_outlier_detection_and_retries_until_set_off(
    cluster: Cluster, operator: Operator, namespace: str, istioctl: Path, scrapers: str
) -> None:
    """Phase D's outcome as the default: a sidecar agent that says nothing about traffic
    gets its type's outlier detection (DestinationRule) and retries (VirtualService), both
    accepted by the real CRDs and the analyzer; turning them off removes both."""
    apply(cluster, agent("plain", namespace, {"mode": "sidecar"}, agentType="orchestrator"))
    mesh_ready(cluster, namespace, "plain")
    live = mesh_objects(cluster, namespace)
    policy = live[("DestinationRule", "plain")]["spec"]["trafficPolicy"]
    assert policy["outlierDetection"]["consecutive5xxErrors"] == 5
    assert policy["outlierDetection"]["maxEjectionPercent"] == 34
    http = live[("VirtualService", "plain")]["spec"]["http"]
    assert [r["retries"]["attempts"] for r in http if "retries" in r] == [3, 3]
    pods_in_mode(cluster, namespace, [agent("plain", namespace, None)], "sidecar")
    _, unexpected = judged(cluster, istioctl, namespace)
    assert not unexpected, describe(unexpected)

    off = {"retries": {"enabled": False}, "outlierDetection": {"enabled": False}}
    apply(
        cluster,
        agent("plain", namespace, {"mode": "sidecar", "traffic": off}, agentType="orchestrator"),
    )
    eventually(
        lambda: (
            not {("DestinationRule", "plain"), ("VirtualService", "plain")}
            & kinds_of(cluster, namespace)
        ),
        what="the traffic objects to be pruned",
    )
    mesh_ready(cluster, namespace, "plain")


def test_shared_objects_outlive_one_agent_and_go_with_the_last(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    mesh = {"mode": "ambient", "waypoint": "namespace"}
    apply(cluster, agent("a", namespace, mesh), agent("b", namespace, mesh))
    for name in ("a", "b"):
        mesh_ready(cluster, namespace, name)
    uid_of = agent_uids(cluster, namespace)
    shared = [("AuthorizationPolicy", c.NAMESPACE_DEFAULT_DENY), ("Gateway", c.NAMESPACE_WAYPOINT)]

    def owners() -> dict[tuple[str, str], set[str]]:
        live = mesh_objects(cluster, namespace)
        found = {}
        for key in shared:
            refs = live[key]["metadata"]["ownerReferences"]
            assert not any(ref.get("controller") for ref in refs)
            found[key] = {ref["uid"] for ref in refs}
        return found

    eventually(lambda: owners() == {k: {uid_of["a"], uid_of["b"]} for k in shared}, what="2 owners")
    cluster.kubectl("delete", f"{c.PLURAL}.{c.GROUP}", "a", "-n", namespace, "--wait=true")
    eventually(lambda: owners() == {k: {uid_of["b"]} for k in shared}, what="b, the only owner")
    assert ("AuthorizationPolicy", "a") not in kinds_of(cluster, namespace)
    mesh_ready(cluster, namespace, "b")
    cluster.kubectl("delete", f"{c.PLURAL}.{c.GROUP}", "b", "-n", namespace, "--wait=true")
    eventually(
        lambda: kinds_of(cluster, namespace) == set(),
        what="the garbage collector to remove what the last agent owned",
    )


def test_a_deleted_shared_object_is_restored_from_the_watch(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    apply(cluster, agent("a", namespace, {"mode": "ambient", "waypoint": "namespace"}))
    mesh_ready(cluster, namespace, "a")
    shared = {("AuthorizationPolicy", c.NAMESPACE_DEFAULT_DENY), ("Gateway", c.NAMESPACE_WAYPOINT)}
    assert shared <= kinds_of(cluster, namespace)
    cluster.kubectl(
        "delete",
        "authorizationpolicies.security.istio.io",
        c.NAMESPACE_DEFAULT_DENY,
        "-n",
        namespace,
    )
    cluster.kubectl(
        "delete", "gateways.gateway.networking.k8s.io", c.NAMESPACE_WAYPOINT, "-n", namespace
    )
    eventually(
        lambda: shared <= kinds_of(cluster, namespace),
        timeout=15,
        what="the shared objects to be restored",
    )


def test_policies_naming_a_type_follow_its_agents(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    mesh = {"mode": "sidecar", "allowFrom": [{"agentType": "testing", "ports": ["grpc"]}]}
    apply(cluster, agent("b", namespace, mesh))
    mesh_ready(cluster, namespace, "b")

    def principals() -> list[str]:
        policy = mesh_objects(cluster, namespace)[("AuthorizationPolicy", "b")]
        return [
            p
            for rule in policy["spec"].get("rules") or []
            if rule["to"][0]["operation"]["ports"] == ["9090"]
            for s in rule["from"]
            for p in s["source"].get("principals", [])
        ]

    sa = f"cluster.local/ns/{namespace}/sa"
    assert principals() == []
    tester = {"mode": "sidecar"}
    apply(cluster, agent("t1", namespace, tester, agentType="testing"))
    eventually(lambda: principals() == [f"{sa}/t1"], what="t1 to be allowed")
    apply(
        cluster,
        agent("t2", namespace, None, agentType="testing", serviceAccountName="shared-tester"),
    )
    eventually(lambda: principals() == [f"{sa}/shared-tester", f"{sa}/t1"], what="t2 allowed")
    cluster.kubectl("delete", f"{c.PLURAL}.{c.GROUP}", "t1", "-n", namespace)
    eventually(lambda: principals() == [f"{sa}/shared-tester"], what="t1 no longer allowed")


def test_the_crds_refuse_contradictory_mesh_settings(
    cluster: Cluster, crd: None, namespace: str
) -> None:
    cases = [
        ({"mode": "sidecar", "waypoint": "agent"}, "mesh.waypoint is for ambient mode"),
        (
            {"mode": "ambient", "waypoint": "none", "traffic": {"timeout": "1s"}},
            "mesh.traffic needs a waypoint",
        ),
        (
            {"mode": "ambient", "allowFrom": [{"agent": "a", "namespace": "b"}]},
            "exactly one of agent, agentType, namespace, serviceAccount",
        ),
        ({"mode": "ambient", "traffic": {"timeout": "soon"}}, "spec.mesh.traffic.timeout"),
        ({"mode": "ambient", "traffic": {"faultInjection": {}}}, "needs a delay or an abort"),
        ({"mode": "ambient", "grpc": "proxyless"}, "mesh.grpc: proxyless needs mesh.mode: sidecar"),
        ({"grpc": "proxyless"}, "mesh.grpc: proxyless needs mesh.mode: sidecar"),
        ({"mode": "sidecar", "traffic": {"retries": {"attempts": 0}}}, "spec.mesh.traffic.retries"),
    ]
    for mesh, message in cases:
        proc = cluster.kubectl(
            "apply", "-f", "-", input=yaml.safe_dump(agent("x", namespace, mesh)), check=False
        )
        assert proc.returncode != 0 and message in proc.stderr, (mesh, proc.stderr)
    assert (
        cluster.kubectl("get", f"{c.PLURAL}.{c.GROUP}", "-n", namespace, "-o", "name").stdout == ""
    )


# Last: it takes an Istio API away from the whole cluster for a while.
def test_istio_crd_removed_and_restored_converges_without_a_restart(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    from agentfleet_dev import build

    apply(cluster, agent("b", namespace, {"mode": "ambient"}))
    mesh_ready(cluster, namespace, "b")
    pid = operator.process.pid
    upstream = build.toolchain(lambda m: None).upstream_crds / "istio"
    istio_crds = [
        doc
        for path in sorted(upstream.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "CustomResourceDefinition"
    ]
    crd = next(d for d in istio_crds if d["metadata"]["name"] == PEER_AUTHENTICATION_CRD)
    try:
        cluster.kubectl("delete", "crd", PEER_AUTHENTICATION_CRD, "--timeout=120s")
        said = mesh_ready(cluster, namespace, "b", "False", c.Reason.CRD_NOT_INSTALLED)
        assert PEER_AUTHENTICATION_CRD in said["message"]
        # The agent itself runs on, and the rest of its mesh objects stay.
        assert conditions(cluster, namespace, "b")[c.COND_READY]["status"] == "True"
        assert ("AuthorizationPolicy", "b") in {
            (o["kind"], o["metadata"]["name"])
            for o in get_json(cluster, "authorizationpolicies.security.istio.io", "-n", namespace)[
                "items"
            ]
        }
    finally:
        cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(crd))
        cluster.kubectl(
            "wait", "--for=condition=Established", f"crd/{PEER_AUTHENTICATION_CRD}", "--timeout=60s"
        )
    mesh_ready(cluster, namespace, "b")
    eventually(
        lambda: ("PeerAuthentication", "b") in kinds_of(cluster, namespace),
        what="the PeerAuthentication to come back",
    )
    assert operator.process.pid == pid and operator.process.poll() is None
