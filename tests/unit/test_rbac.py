"""The operator's RBAC rules come from the table of child kinds, and the chart ships them."""

from __future__ import annotations

from pathlib import Path

from agentfleet.render import rbac
from agentfleet.render.children import CHILD_KINDS

ROOT = Path(__file__).resolve().parents[2]
CHART_RULES = ROOT / "charts" / "agentfleet" / "files" / "rbac.yaml"


def test_the_charts_rules_are_generated_from_the_table() -> None:
    assert CHART_RULES.read_text() == rbac.render_yaml(), (
        "charts/agentfleet/files/rbac.yaml is stale: run `make manifests`"
    )


def test_every_child_kind_is_granted_exactly_what_the_operator_does_with_it() -> None:
    rules = rbac.rules()
    for row in CHILD_KINDS:
        granted = {
            verb
            for rule in rules[row.rbac_group]
            if row.group in rule["apiGroups"] and row.plural in rule["resources"]
            for verb in rule["verbs"]
        }
        assert granted == {"get", "list", "watch", "create", "patch", "delete"}, row.kind


def test_nothing_is_granted_on_secrets_or_with_wildcards() -> None:
    for name, group in rbac.rules().items():
        for rule in group:
            assert "secrets" not in rule["resources"]
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
            assert not {"escalate", "bind", "impersonate", "update"} & set(rule["verbs"]) or (
                rule["resources"] == ["aiagents/finalizers"]
                # the leader Lease is updated with its resourceVersion (client-go's way), in
                # the operator's own namespace only
                or (name, rule["resources"]) == ("ownNamespace", ["leases"])
            )
