"""Istio and Gateway API renderers (render/istio.py, render/gateway.py): modes, waypoints,
who may call, shared objects, traffic rules, and the istio/ folder."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentfleet.api import constants as c
from agentfleet.api.config import RenderConfig
from agentfleet.api.models import AIAgent, MeshMode
from agentfleet.controllers.cache import depends_on_peers
from agentfleet.controllers.status import pending_features
from agentfleet.render import gateway, istio
from agentfleet.render.children import CHILD_KINDS, desired_objects
from agentfleet.render.context import Peer, RenderContext
from tests.unit.conftest import agent_from
from tests.unit.render.fleet import generator

MESH_KINDS = [row.kind for row in CHILD_KINDS if row.feature == c.COND_MESH_READY]


def mesh_agent(mesh: dict[str, Any] | None, name: str = "b", agent_type: str = "coding") -> AIAgent:
    spec: dict[str, Any] = {"agentType": agent_type, "image": "example.com/a:1"}
    if mesh is not None:
        spec["mesh"] = mesh
    return agent_from(spec, name=name)


def objects(agent: AIAgent, context: RenderContext | None = None) -> dict[tuple[str, str], Any]:
    rendered = desired_objects(agent, context or RenderContext())
    return {(o["kind"], o["metadata"]["name"]): o for o in rendered}


def mesh_kinds(agent: AIAgent, context: RenderContext | None = None) -> set[tuple[str, str]]:
    return {key for key in objects(agent, context) if key[0] in MESH_KINDS}


def peer(
    name: str,
    agent_type: str,
    mesh: dict[str, Any] | None = None,
    sa: str = "",
    exported: bool = False,
) -> Peer:
    return Peer(name, f"uid-{name}", agent_type, sa or name, mesh, exported)


# --- modes ------------------------------------------------------------------------------------


def test_mode_none_and_no_mesh_render_nothing_of_the_mesh() -> None:
    assert mesh_kinds(mesh_agent(None)) == set()
    assert mesh_kinds(mesh_agent({"mode": "none", "allowFrom": [{"namespace": "x"}]})) == set()
    # A mode left unset follows the operator, whose default is none.
    assert mesh_kinds(mesh_agent({"allowFrom": [{"namespace": "x"}]})) == set()
    deployment = objects(mesh_agent(None))[("Deployment", "b")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert not {c.LABEL_ISTIO_DATAPLANE_MODE, c.LABEL_ISTIO_SIDECAR_INJECT} & set(labels)


@pytest.mark.parametrize("mesh", [None, {}, {"allowFrom": [{"namespace": "x"}]}])
def test_the_operators_default_mode_applies_when_the_agent_sets_none(
    mesh: dict[str, Any] | None,
) -> None:
    context = RenderContext(RenderConfig(mesh_mode=MeshMode.SIDECAR))
    found = mesh_kinds(mesh_agent(mesh), context)
    assert ("PeerAuthentication", "b") in found and ("AuthorizationPolicy", "b") in found
    # ... and an explicit mode wins over it.
    assert mesh_kinds(mesh_agent({"mode": "none"}), context) == set()


def test_ambient_and_sidecar_enrol_only_the_agents_pods() -> None:
    ambient = objects(mesh_agent({"mode": "ambient"}))
    sidecar = objects(mesh_agent({"mode": "sidecar"}))
    pod = ambient[("Deployment", "b")]["spec"]["template"]["metadata"]["labels"]
    assert pod[c.LABEL_ISTIO_DATAPLANE_MODE] == "ambient"
    assert pod[c.LABEL_ISTIO_SIDECAR_INJECT] == "false"  # a namespace injection label loses
    pod = sidecar[("Deployment", "b")]["spec"]["template"]["metadata"]["labels"]
    assert pod[c.LABEL_ISTIO_SIDECAR_INJECT] == "true"
    assert c.LABEL_ISTIO_DATAPLANE_MODE not in pod
    # The selector never changes with the mode (it is immutable).
    assert (
        ambient[("Deployment", "b")]["spec"]["selector"]
        == sidecar[("Deployment", "b")]["spec"]["selector"]
    )


def test_peer_authentication_is_strict_unless_asked_otherwise() -> None:
    strict = objects(mesh_agent({"mode": "ambient"}))[("PeerAuthentication", "b")]
    assert strict["spec"] == {
        "selector": {"matchLabels": {c.LABEL_NAME: c.APP_NAME, c.LABEL_INSTANCE: "b"}},
        "mtls": {"mode": "STRICT"},
    }
    loose = objects(mesh_agent({"mode": "sidecar", "mtls": "PERMISSIVE"}))
    assert loose[("PeerAuthentication", "b")]["spec"]["mtls"] == {"mode": "PERMISSIVE"}


# --- waypoints --------------------------------------------------------------------------------


def test_traffic_rules_in_ambient_bring_the_namespace_waypoint() -> None:
    found = objects(mesh_agent({"mode": "ambient", "traffic": {"timeout": "5s"}}))
    assert found[("Service", "b")]["metadata"]["labels"][c.LABEL_ISTIO_USE_WAYPOINT] == "waypoint"
    waypoint = found[("Gateway", "waypoint")]
    assert waypoint["spec"]["gatewayClassName"] == "istio-waypoint"
    assert waypoint["spec"]["listeners"] == [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]
    assert waypoint["metadata"]["labels"][c.LABEL_ISTIO_WAYPOINT_FOR] == "service"
    # istiod copies a Gateway's labels to the waypoint's pods: never an agent's selector.
    assert c.LABEL_INSTANCE not in waypoint["metadata"]["labels"]
    assert c.LABEL_INSTANCE not in waypoint["spec"]["infrastructure"]["labels"]
    # The default rules (retries, outlier detection) bring it too ...
    default = objects(mesh_agent({"mode": "ambient"}))
    assert default[("Service", "b")]["metadata"]["labels"][c.LABEL_ISTIO_USE_WAYPOINT] == "waypoint"
    # ... and without any traffic rule ambient needs no waypoint.
    off = {"retries": {"enabled": False}, "outlierDetection": {"enabled": False}}
    plain = objects(mesh_agent({"mode": "ambient", "traffic": off}))
    assert c.LABEL_ISTIO_USE_WAYPOINT not in plain[("Service", "b")]["metadata"]["labels"]
    assert not [k for k in plain if k[0] == "Gateway"]


def test_an_agent_can_have_its_own_waypoint_or_none() -> None:
    own = objects(mesh_agent({"mode": "ambient", "waypoint": "agent"}))
    gateway_ = own[("Gateway", "b-waypoint")]
    assert gateway_["metadata"]["ownerReferences"][0]["controller"] is True
    assert own[("Service", "b")]["metadata"]["labels"][c.LABEL_ISTIO_USE_WAYPOINT] == "b-waypoint"
    none = objects(mesh_agent({"mode": "ambient", "waypoint": "none"}))
    assert not [k for k in none if k[0] == "Gateway"]


def test_sidecar_mode_has_no_waypoint_even_with_traffic_rules() -> None:
    found = objects(mesh_agent({"mode": "sidecar", "traffic": {"timeout": "5s"}}))
    assert not [k for k in found if k[0] in ("Gateway", "HTTPRoute", "GRPCRoute")]
    assert c.LABEL_ISTIO_USE_WAYPOINT not in found[("Service", "b")]["metadata"]["labels"]


def test_waypoint_names_stay_dns_labels() -> None:
    long = "a" * 63
    name = istio.agent_waypoint_name(long)
    assert len(name) <= 63 and name.endswith("-waypoint")
    assert name != istio.agent_waypoint_name("a" * 62)  # distinct agents, distinct names
    assert istio.agent_waypoint_name("coding") == "coding-waypoint"


# --- who may call -----------------------------------------------------------------------------


def callers(policy: dict[str, Any]) -> list[tuple[list[str], list[str], list[str]]]:
    """(principals, namespaces, ports) of each rule."""
    out = []
    for rule in policy["spec"].get("rules") or []:
        principals = [p for s in rule["from"] for p in s["source"].get("principals", [])]
        namespaces = [n for s in rule["from"] for n in s["source"].get("namespaces", [])]
        out.append((principals, namespaces, rule["to"][0]["operation"]["ports"]))
    return out


def test_allow_from_resolves_agents_types_namespaces_and_service_accounts() -> None:
    mesh = {
        "mode": "sidecar",
        "allowFrom": [
            {"agent": "orchestrator"},
            {"agentType": "testing", "ports": ["grpc"]},
            {"namespace": "ci", "ports": ["http"]},
            {"serviceAccount": {"name": "deployer"}, "ports": ["http"]},
            {"serviceAccount": {"namespace": "tools", "name": "bot"}, "ports": ["metrics"]},
        ],
    }
    peers = (
        peer("orchestrator", "orchestrator", sa="orch-sa"),
        peer("t1", "testing"),
        peer("t2", "testing"),
        peer("x", "coding"),
    )
    policy = objects(mesh_agent(mesh), RenderContext(peers=peers))[("AuthorizationPolicy", "b")]
    td = "cluster.local/ns/team-a/sa"
    assert callers(policy) == [
        ([f"{td}/deployer"], ["ci"], ["8080"]),
        ([f"{td}/orch-sa"], [], ["8080", "9090"]),
        ([f"{td}/t1", f"{td}/t2"], [], ["9090"]),
        (["cluster.local/ns/tools/sa/bot"], [], ["9091"]),
        ([], ["monitoring"], ["9091"]),  # the metrics scrapers
    ]
    assert policy["spec"]["action"] == "ALLOW"
    assert policy["spec"]["selector"]["matchLabels"][c.LABEL_INSTANCE] == "b"


def test_callers_that_do_not_exist_yet_get_no_rule_never_an_empty_list() -> None:
    mesh = {"mode": "ambient", "allowFrom": [{"agentType": "testing"}, {"agent": "ghost"}]}
    config = RenderConfig(mesh_metrics_namespaces=())
    policy = objects(mesh_agent(mesh), RenderContext(config))[("AuthorizationPolicy", "b")]
    assert "rules" not in policy["spec"]  # ALLOW without rules: nobody is allowed
    assert policy["spec"]["action"] == "ALLOW"


def test_type_policies_follow_the_agents_of_that_type() -> None:
    mesh = {"mode": "ambient", "waypoint": "none", "allowFrom": [{"agentType": "testing"}]}
    before = RenderContext(peers=(peer("t1", "testing"),))
    after = RenderContext(peers=(peer("t1", "testing"), peer("t2", "testing")))
    gone = RenderContext(peers=(peer("t2", "testing"),))
    rendered = [
        callers(objects(mesh_agent(mesh), ctx)[("AuthorizationPolicy", "b")])[0][0]
        for ctx in (before, after, gone)
    ]
    td = "cluster.local/ns/team-a/sa"
    assert rendered == [[f"{td}/t1"], [f"{td}/t1", f"{td}/t2"], [f"{td}/t2"]]


def test_behind_a_waypoint_callers_are_checked_there_and_pods_admit_only_the_waypoint() -> None:
    mesh = {
        "mode": "ambient",
        "waypoint": "namespace",
        "allowFrom": [{"agentType": "orchestrator", "ports": ["grpc"]}],
    }
    found = objects(mesh_agent(mesh), RenderContext(peers=(peer("o", "orchestrator"),)))
    l7 = found[("AuthorizationPolicy", "b.via-waypoint")]
    assert l7["spec"]["targetRefs"] == [{"group": "", "kind": "Service", "name": "b"}]
    assert "selector" not in l7["spec"]
    assert callers(l7) == [
        (["cluster.local/ns/team-a/sa/o"], [], ["9090"]),
        ([], ["monitoring"], ["9091"]),
    ]
    pods = found[("AuthorizationPolicy", "b")]
    assert callers(pods) == [
        (["cluster.local/ns/team-a/sa/waypoint"], [], ["9090", "9091"]),
        ([], ["monitoring"], ["9091"]),  # Prometheus scrapes pod IPs, past the waypoint
    ]
    assert "targetRefs" not in pods["spec"]


def test_a_ztunnel_policy_never_carries_l7_attributes() -> None:
    """ztunnel turns an L7 rule into a deny: only principals, namespaces and ports."""
    mesh = {
        "mode": "ambient",
        "waypoint": "none",
        "allowFrom": [{"agentType": "coding"}, {"namespace": "ci"}],
    }
    policy = objects(mesh_agent(mesh))[("AuthorizationPolicy", "b")]
    for rule in policy["spec"]["rules"]:
        assert set(rule) == {"from", "to"}
        assert all(set(s["source"]) <= {"principals", "namespaces"} for s in rule["from"])
        assert all(set(o["operation"]) == {"ports"} for o in rule["to"])


# --- shared objects ---------------------------------------------------------------------------


def test_the_default_deny_is_shared_by_every_mesh_agent_of_the_namespace() -> None:
    peers = (
        peer("a", "coding", {"mode": "sidecar"}),
        peer("off", "coding", {"mode": "none"}),
        peer("plain", "coding", None),
        peer("z", "testing", {"mode": "ambient"}),
    )
    found = objects(mesh_agent({"mode": "ambient"}), RenderContext(peers=peers))
    deny = found[("AuthorizationPolicy", c.NAMESPACE_DEFAULT_DENY)]
    assert deny["spec"] == {}
    owners = deny["metadata"]["ownerReferences"]
    assert [o["name"] for o in owners] == ["a", "b", "z"]  # the agent itself even if no peer
    assert not any(o.get("controller") for o in owners)
    assert c.LABEL_MANAGED_BY in deny["metadata"]["labels"]  # watched like every child
    assert c.LABEL_INSTANCE not in deny["metadata"]["labels"]
    # The operator can leave it out.
    off = RenderContext(RenderConfig(mesh_default_deny=False), peers)
    assert ("AuthorizationPolicy", c.NAMESPACE_DEFAULT_DENY) not in objects(
        mesh_agent({"mode": "ambient"}), off
    )


def test_the_namespace_waypoint_is_owned_by_the_agents_that_use_it() -> None:
    peers = (
        peer("a", "coding", {"mode": "ambient", "traffic": {"timeout": "1s"}}),
        peer("c", "coding", {"mode": "ambient", "waypoint": "agent"}),
        peer("d", "coding", {"mode": "ambient"}),  # the default traffic rules need it too
        peer("e", "coding", {"mode": "ambient", "waypoint": "namespace"}),
        peer("f", "coding", {"mode": "ambient", "waypoint": "none"}),
        peer("g", "coding", {"mode": "ambient"}, exported=True),  # its own (multi-cluster)
    )
    found = objects(
        mesh_agent({"mode": "ambient", "waypoint": "namespace"}), RenderContext(peers=peers)
    )
    owners = found[("Gateway", "waypoint")]["metadata"]["ownerReferences"]
    assert [o["name"] for o in owners] == ["a", "b", "d", "e"]
    assert not any(o.get("controller") for o in owners)


def test_an_agent_and_its_peers_agree_on_who_uses_the_namespace_waypoint() -> None:
    """Every user renders the shared waypoint with the same owners, or they would overwrite
    each other: a peer's raw spec and the agent's parsed one must give the same answer."""
    mesh = {"mode": "ambient", "traffic": {"outlierDetection": {}}}
    me = objects(mesh_agent(mesh, name="a"), RenderContext(peers=(peer("b", "coding", mesh),)))
    other = objects(mesh_agent(mesh, name="b"), RenderContext(peers=(peer("a", "coding", mesh),)))
    owners = [
        [o["name"] for o in found[("Gateway", "waypoint")]["metadata"]["ownerReferences"]]
        for found in (me, other)
    ]
    assert owners == [["a", "b"], ["a", "b"]]


def test_shared_objects_are_kept_while_another_agent_wants_them() -> None:
    rows = {row.kind: row for row in CHILD_KINDS}
    deny_row, gateway_row = rows["AuthorizationPolicy"], rows["Gateway"]
    assert deny_row.shared and gateway_row.shared
    assert deny_row.still_wanted is istio.still_wanted
    assert gateway_row.still_wanted is gateway.still_wanted
    shared = {"metadata": {"name": c.NAMESPACE_DEFAULT_DENY, "ownerReferences": [{"uid": "x"}]}}
    own = {"metadata": {"name": "b", "ownerReferences": [{"uid": "x", "controller": True}]}}
    users = RenderContext(peers=(peer("a", "coding", {"mode": "sidecar"}),))
    nobody = RenderContext(peers=(peer("a", "coding", {"mode": "none"}),))
    assert istio.still_wanted(shared, users) and not istio.still_wanted(shared, nobody)
    assert not istio.still_wanted(own, users)  # an agent's own policy: nobody else's
    waypoint = {"metadata": {"name": "waypoint", "ownerReferences": [{"uid": "x"}]}}
    uses = RenderContext(peers=(peer("a", "coding", {"mode": "ambient", "waypoint": "namespace"}),))
    assert gateway.still_wanted(waypoint, uses) and not gateway.still_wanted(waypoint, users)
    own_waypoint = {"metadata": {"name": "b-waypoint", "ownerReferences": [{"controller": True}]}}
    assert not gateway.still_wanted(own_waypoint, uses)


# --- traffic ----------------------------------------------------------------------------------


def test_ambient_timeouts_go_on_gateway_api_routes_through_the_waypoint() -> None:
    """Only with retries off: the default retries need a VirtualService (below)."""
    traffic = {"timeout": "30s", "retries": {"enabled": False}}
    found = objects(mesh_agent({"mode": "ambient", "traffic": traffic}))
    http = found[("HTTPRoute", "b")]["spec"]
    assert http["parentRefs"] == [{"group": "", "kind": "Service", "name": "b", "port": 8080}]
    assert http["rules"] == [
        {"backendRefs": [{"name": "b", "port": 8080}], "timeouts": {"request": "30s"}}
    ]
    grpc = found[("GRPCRoute", "b")]["spec"]
    assert grpc["parentRefs"] == [{"group": "", "kind": "Service", "name": "b", "port": 9090}]
    assert ("VirtualService", "b") not in found


@pytest.mark.parametrize(
    "traffic",
    [
        {"retries": {"attempts": 3}},
        {"faultInjection": {"abort": {"percent": 5}}},
    ],
)
def test_what_gateway_api_standard_cannot_say_goes_on_a_virtual_service(
    traffic: dict[str, Any],
) -> None:
    found = objects(mesh_agent({"mode": "ambient", "traffic": {"timeout": "30s", **traffic}}))
    assert ("VirtualService", "b") in found
    assert not {("HTTPRoute", "b"), ("GRPCRoute", "b")} & set(found)
    assert found[("Service", "b")]["metadata"]["labels"][c.LABEL_ISTIO_USE_WAYPOINT] == "waypoint"


def test_the_virtual_service_routes_every_port_and_faults_only_http_and_grpc() -> None:
    traffic = {
        "timeout": "30s",
        "retries": {"attempts": 3, "perTryTimeout": "10s", "retryOn": "5xx,reset"},
        "faultInjection": {
            "delay": {"percent": 10, "fixedDelay": "2s"},
            "abort": {"percent": 5, "httpStatus": 500},
        },
    }
    vs = objects(mesh_agent({"mode": "sidecar", "traffic": traffic}))[("VirtualService", "b")]
    assert vs["spec"]["hosts"] == ["b.team-a.svc.cluster.local"]
    routes = {r["name"]: r for r in vs["spec"]["http"]}
    assert list(routes) == ["http", "grpc", "http-metrics", "http-health"]
    for name, port in (
        ("http", 8080),
        ("grpc", 9090),
        ("http-metrics", 9091),
        ("http-health", 8081),
    ):
        assert routes[name]["match"] == [{"port": port}]
        destination = routes[name]["route"][0]["destination"]
        assert destination == {"host": "b.team-a.svc.cluster.local", "port": {"number": port}}
    assert routes["http"]["fault"]["abort"] == {"percentage": {"value": 5.0}, "httpStatus": 500}
    assert routes["grpc"]["fault"]["abort"] == {
        "percentage": {"value": 5.0},
        "grpcStatus": "UNAVAILABLE",
    }
    assert routes["grpc"]["fault"]["delay"] == {"percentage": {"value": 10.0}, "fixedDelay": "2s"}
    assert routes["http"]["retries"] == {
        "attempts": 3,
        "perTryTimeout": "10s",
        "retryOn": "5xx,reset",
    }
    assert routes["http"]["timeout"] == "30s"
    for name in ("http-metrics", "http-health"):
        assert not {"fault", "retries", "timeout"} & set(routes[name])


def test_fault_injection_is_off_by_default() -> None:
    vs = objects(mesh_agent({"mode": "sidecar", "traffic": {"retries": {}}}))[
        ("VirtualService", "b")
    ]
    assert not any("fault" in route for route in vs["spec"]["http"])


def test_destination_rule_carries_outlier_detection_and_connection_pool() -> None:
    traffic = {
        "outlierDetection": {"consecutive5xxErrors": 7, "maxEjectionPercent": 30},
        "connectionPool": {"maxConnections": 10, "maxRequests": 100},
        "retries": {"enabled": False},
    }
    for mode in ("ambient", "sidecar"):
        found = objects(mesh_agent({"mode": mode, "traffic": traffic}))
        rule = found[("DestinationRule", "b")]["spec"]
        assert rule == {
            "host": "b.team-a.svc.cluster.local",
            "trafficPolicy": {
                "connectionPool": {
                    "tcp": {"maxConnections": 10},
                    "http": {"http2MaxRequests": 100},
                },
                "outlierDetection": {
                    "consecutive5xxErrors": 7,
                    "interval": "10s",
                    "baseEjectionTime": "30s",
                    "maxEjectionPercent": 30,
                },
            },
        }
        # No timeouts, retries or faults: no routes at all.
        assert not {"VirtualService", "HTTPRoute", "GRPCRoute"} & {k[0] for k in found}


def test_hosts_use_the_configured_cluster_domain() -> None:
    context = RenderContext(RenderConfig(cluster_domain="corp.internal"))
    found = objects(
        mesh_agent({"mode": "sidecar", "traffic": {"timeout": "1s", "outlierDetection": {}}}),
        context,
    )
    assert found[("DestinationRule", "b")]["spec"]["host"] == "b.team-a.svc.corp.internal"
    assert found[("VirtualService", "b")]["spec"]["hosts"] == ["b.team-a.svc.corp.internal"]


durations = st.sampled_from(["1s", "250ms", "2m", "1h30m"])
traffics = st.fixed_dictionaries(
    {},
    optional={
        "timeout": durations,
        "retries": st.fixed_dictionaries({}, optional={"attempts": st.integers(1, 10)}),
        "outlierDetection": st.just({}),
        "connectionPool": st.just({"maxConnections": 5}),
        "faultInjection": st.just({"delay": {"percent": 1, "fixedDelay": "1s"}}),
    },
)


@settings(max_examples=200, deadline=None)
@given(
    mode=st.sampled_from(["ambient", "sidecar", "none"]),
    waypoint=st.sampled_from([None, "namespace", "agent"]),
    traffic=traffics,
)
def test_never_a_virtual_service_and_a_gateway_api_route_for_one_host(
    mode: str, waypoint: str | None, traffic: dict[str, Any]
) -> None:
    mesh: dict[str, Any] = {"mode": mode, "traffic": traffic}
    if waypoint and mode == "ambient":
        mesh["waypoint"] = waypoint
    found = {k[0] for k in mesh_kinds(mesh_agent(mesh))}
    assert not ({"VirtualService"} <= found and found & {"HTTPRoute", "GRPCRoute"})
    if mode == "none":
        assert not found
    if (
        found & {"HTTPRoute", "GRPCRoute", "DestinationRule", "VirtualService"}
        and mode == "ambient"
    ):
        assert "Gateway" in found  # ambient's L7 rules are applied by a waypoint
    if mode == "sidecar":
        assert not found & {"Gateway", "HTTPRoute", "GRPCRoute"}


# --- health of Gateway API objects ------------------------------------------------------------


def test_gateway_health_reports_what_istiod_refused() -> None:
    pending = {
        "kind": "Gateway",
        "metadata": {"name": "waypoint"},
        "status": {"conditions": [{"type": "Accepted", "status": "Unknown", "reason": "Pending"}]},
    }
    assert gateway.health(pending) is None  # no controller has spoken: nothing to report
    refused = {
        "kind": "HTTPRoute",
        "metadata": {"name": "b"},
        "status": {
            "parents": [
                {
                    "conditions": [
                        {
                            "type": "Accepted",
                            "status": "False",
                            "reason": "NotAllowedByListeners",
                            "message": "no listener",
                        }
                    ]
                }
            ]
        },
    }
    assert gateway.health(refused) == (False, "NotAllowedByListeners", "HTTPRoute b: no listener")
    accepted = {
        "kind": "Gateway",
        "metadata": {"name": "w"},
        "status": {"conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted"}]},
    }
    assert gateway.health(accepted) is None


# --- the istio/ folder ------------------------------------------------------------------------


def test_istio_folder_is_up_to_date() -> None:
    """istio/ holds the example fleet's mesh objects in both modes; regenerate it with
    `make istio` (python istio/generate.py) and review the diff."""
    stale = [
        str(path)
        for path, text in generator().rendered().items()
        if not path.exists() or path.read_text() != text
    ]
    assert not stale, f"stale, run `make istio`: {stale}"
    assert generator().main(["--check"]) == 0  # and no file is left over


def test_istio_folder_holds_the_seven_agents_and_the_shared_objects() -> None:
    for mode in generator().MODES:
        files = generator().render_mode(mode)
        assert set(files) == {
            "namespace.yaml",
            *(
                f"{name}.yaml"
                for name in (
                    "coding",
                    "compliance",
                    "discovery",
                    "documentation",
                    "orchestrator",
                    "security",
                    "testing",
                )
            ),
        }
        assert c.NAMESPACE_DEFAULT_DENY in files["namespace.yaml"]
        assert "ownerReferences" not in "".join(files.values())


# --- what the rest of the operator reads of the mesh ------------------------------------------


def test_mesh_settings_left_without_a_mode_by_a_none_operator_say_so() -> None:
    asked = mesh_agent({"allowFrom": [{"namespace": "ci"}]})
    said = pending_features(asked, frozenset())
    assert [(f.condition, f.ok, f.reason) for f in said] == [
        (c.COND_MESH_READY, False, c.Reason.DISABLED)
    ]
    assert "--mesh-mode" in said[0].message
    assert pending_features(asked, frozenset({c.COND_MESH_READY})) == []  # it rendered
    assert pending_features(mesh_agent({"mode": "none"}), frozenset()) == []  # chosen
    assert pending_features(mesh_agent(None), frozenset()) == []


@pytest.mark.parametrize(
    ("mesh", "default", "fans_out"),
    [
        (None, None, False),
        (None, "none", False),
        (None, "ambient", True),  # in the mesh by the operator's default
        ({"mode": "none"}, "ambient", False),
        ({"mode": "sidecar"}, None, True),
        ({"allowFrom": [{"agentType": "coding"}]}, None, True),  # default unknown: follow
        ({"allowFrom": [{"agentType": "coding"}]}, "none", False),
    ],
)
def test_mesh_agents_are_reconciled_when_their_peers_change(
    mesh: dict[str, Any] | None, default: str | None, fans_out: bool
) -> None:
    assert depends_on_peers(peer("a", "coding", mesh), default) is fans_out


def test_run_passes_the_mesh_options_into_the_render_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from agentfleet import main
    from agentfleet.runtime import runner

    seen: list[Any] = []
    monkeypatch.setattr(runner, "run", lambda config, verbose: seen.append(config))
    args = ["run", "--mesh-mode", "ambient", "--mesh-trust-domain", "prod.example"]
    args += ["--mesh-metrics-namespace", "obs", "--no-mesh-default-deny"]
    assert CliRunner().invoke(main.app, args).exit_code == 0
    render = seen[0].render
    assert render.mesh_mode == MeshMode.AMBIENT and render.mesh_trust_domain == "prod.example"
    assert render.mesh_metrics_namespaces == ("obs",) and not render.mesh_default_deny
    assert CliRunner().invoke(main.app, ["run", "--mesh-metrics-namespace", ""]).exit_code == 0
    assert seen[1].render.mesh_metrics_namespaces == ()  # '' turns scraping off
    assert seen[1].render.mesh_mode == MeshMode.NONE  # the default
    assert CliRunner().invoke(main.app, ["run", "--mesh-mode", "istio"]).exit_code == 2
    assert len(seen) == 2
