"""The Pod Security checks (controllers/podsecurity.py) and the policy that applies them.

The corpus's expected check ids here are this module's reading of Pod Security admission;
tests/integration/test_pod_security.py holds the same corpus to the apiserver's own verdicts.
"""

from __future__ import annotations

from typing import Any

import pytest

from agentfleet.api import constants as c
from agentfleet.api.config import Policy
from agentfleet.controllers import podsecurity, policy
from agentfleet.render import deployment
from agentfleet.render.context import RenderContext
from tests.unit.conftest import agent_from
from tests.unit.podsecurity_corpus import CASES, Case, spec_of


def pod_of(case: Case) -> dict[str, Any]:
    return deployment.pod_spec(agent_from(spec_of(case)), RenderContext())


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
@pytest.mark.parametrize("level", ["restricted", "baseline"])
def test_each_case_is_refused_by_exactly_its_checks(case: Case, level: str) -> None:
    found = podsecurity.refused(pod_of(case), level, frozenset())
    assert {f.check for f in found} == case.refused_at(level)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_the_policy_judges_exactly_the_parts_of_the_rendered_pod_admission_reads(
    case: Case,
) -> None:
    """The policy reads a cheaper view of the pod; it must be the rendered pod's own parts."""
    view, pod = deployment.pod_security_view(agent_from(spec_of(case))), pod_of(case)
    assert view["securityContext"] == pod["securityContext"]
    assert view.get("volumes") == pod.get("volumes")
    [container], [rendered] = view["containers"], pod["containers"]
    assert container == {k: v for k, v in rendered.items() if k in container}
    read = {"name", "securityContext", "ports", "livenessProbe", "readinessProbe", "startupProbe"}
    assert read & set(rendered) == set(container)
    assert set(pod) - set(view) <= {
        "serviceAccountName", "automountServiceAccountToken", "enableServiceLinks",
        "runtimeClassName", "imagePullSecrets", "nodeSelector", "tolerations",
        "topologySpreadConstraints", "affinity",
    }, "a pod field Pod Security may read is missing from the view"  # fmt: skip
    assert podsecurity.refused(view, "restricted", frozenset()) == podsecurity.refused(
        pod, "restricted", frozenset()
    )


def test_the_corpus_reaches_every_check_an_agent_spec_can_reach() -> None:
    reached = {check for case in CASES for check in case.refused}
    # Not reachable from an AIAgent: the CRD passes through none of the fields they read.
    unreachable = {
        "hostNamespaces",
        "hostPorts",
        "windowsHostProcess",  # pod-level only with hostNetwork; a Windows node's matter
        "procMount",  # Unmasked needs hostUsers: false, which the CRD does not pass
        "procMount_restricted",
        "seccompProfile_restricted",  # the default sets it; null cannot pass the CRD
    }
    assert reached == set(c.POD_SECURITY_CHECKS) - unreachable


def test_privileged_installs_check_nothing_and_exceptions_allow_one_check_each() -> None:
    everything = next(case for case in CASES if case.name == "everything")
    pod = pod_of(everything)
    assert podsecurity.refused(pod, "privileged", frozenset()) == []
    allowed = frozenset({"hostPathVolumes", "runAsUser"})
    left = {f.check for f in podsecurity.refused(pod, "restricted", allowed)}
    assert left == everything.refused - allowed


def raw(**pod: Any) -> dict[str, Any]:
    """A pod spec with one restricted-clean container, plus `pod`'s keys."""
    container = {
        "name": "agent",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    return {"containers": [container], **pod}


def checks(pod: dict[str, Any], level: str = "restricted") -> set[str]:
    return {f.check for f in podsecurity.refused(pod, level, frozenset())}


def test_fields_no_agent_can_set_are_judged_too() -> None:
    """What the checker does for pod fields the CRD does not expose, so it stays a faithful
    copy should the pod template grow one."""
    assert checks(raw()) == set()
    assert checks(raw(hostNetwork=True, hostPID=True)) == {"hostNamespaces"}
    with_port = raw()
    with_port["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 80}]
    assert checks(with_port) == {"hostPorts"}
    lifecycle = raw()
    lifecycle["containers"][0]["lifecycle"] = {"preStop": {"httpGet": {"host": "x", "port": 1}}}
    assert checks(lifecycle) == {"hostProbesAndHostLifecycle"}
    unmasked = raw()
    unmasked["containers"][0]["securityContext"]["procMount"] = "Unmasked"
    assert checks(unmasked, "baseline") == {"procMount"}
    # In a user namespace, baseline lets it be; restricted still does not (v1.35).
    assert checks({**unmasked, "hostUsers": False}, "baseline") == set()
    assert checks({**unmasked, "hostUsers": False}) == {"procMount_restricted"}
    windows = raw(securityContext={"windowsOptions": {"hostProcess": True}})
    assert checks(windows, "baseline") == {"windowsHostProcess"}
    bare = {"containers": [{"name": "agent"}]}
    assert checks(bare) == {
        "allowPrivilegeEscalation",
        "capabilities_restricted",
        "runAsNonRoot",
        "seccompProfile_restricted",
    }
    assert checks({**bare, "os": {"name": "windows"}}) == {"runAsNonRoot"}
    init = raw(initContainers=[{"name": "init", "securityContext": {"privileged": True}}])
    assert "privileged" in checks(init)


def test_an_unknown_volume_type_is_refused_not_ignored() -> None:
    """An allow-list: a source Kubernetes adds later fails until this module knows it."""
    pod = raw(volumes=[{"name": "x", "somethingNew": {}}, {"name": "y"}])
    [finding] = podsecurity.refused(pod, "restricted", frozenset())
    assert (finding.check, finding.field) == ("restrictedVolumes", "volumes[0]")


def test_booleans_and_numbers_are_read_strictly() -> None:
    """`"false"` is not false and `false` is not uid 0: what is not exactly the allowed
    value fails (the apiserver would refuse the wrong type anyway)."""
    pod = raw()
    pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = "false"
    pod["containers"][0]["securityContext"]["runAsUser"] = False
    assert checks(pod) == {"allowPrivilegeEscalation"}


# --- the policy's sentences ------------------------------------------------------------------


def messages(spec: dict[str, Any], **config: Any) -> list[str]:
    agent = agent_from({"agentType": "custom", "image": "example.com/a:1", **spec})
    return [v.text for v in policy.violations(agent, Policy(**config))]


def test_refusals_name_the_spec_field_and_the_check() -> None:
    said = messages(
        {
            "securityContext": {"capabilities": {"drop": []}},
            "podSecurityContext": {"seccompProfile": {"type": "Unconfined"}},
            "volumes": [
                {"name": "cfg", "configMap": {"name": "c"}},
                {"name": "src", "gitRepo": {"repository": "r"}},
            ],
            "probes": {"liveness": {"tcpSocket": {"port": 1, "host": "10.0.0.1"}}},
        }
    )
    assert said == [
        "spec.volumes[1] (src) is a gitRepo volume (allowed: configMap, csi, downwardAPI,"
        " emptyDir, ephemeral, image, persistentVolumeClaim, projected, secret)"
        " (Pod Security restricted: restrictedVolumes)",
        "spec.podSecurityContext.seccompProfile.type is 'Unconfined': RuntimeDefault or"
        " Localhost only (Pod Security baseline: seccompProfile_baseline)",
        "spec.securityContext.capabilities.drop must include ALL"
        " (Pod Security restricted: capabilities_restricted)",
        "spec.probes.liveness.tcpSocket.host must not be set"
        " (Pod Security baseline: hostProbesAndHostLifecycle)",
    ]


def test_the_installation_chooses_the_level_and_the_exceptions() -> None:
    chown = {"securityContext": {"capabilities": {"add": ["CHOWN"]}}}
    assert messages(chown) != []
    assert messages(chown, pod_security="baseline") == []
    assert messages(chown, pod_security_exceptions=("capabilities_restricted",)) == []
    with pytest.raises(ValueError, match="unknown check"):
        Policy(pod_security_exceptions=("capabilities",))


def test_the_old_flags_still_mean_what_they_meant() -> None:
    host_path = {"volumes": [{"name": "m", "hostPath": {"path": "/models"}}]}
    assert messages(host_path, allow_host_path=True) == []
    root = {"securityContext": {"runAsUser": 0, "runAsNonRoot": False, "privileged": True,
            "allowPrivilegeEscalation": True, "capabilities": {"add": ["SYS_ADMIN"]}}}  # fmt: skip
    assert messages(root, allow_privileged=True) == []
    assert len(messages(root)) == 5
    # Neither ever allowed what the deny-list did not name.
    assert messages({**host_path, **root}, allow_host_path=True, allow_privileged=True) == []
    unconfined = {"securityContext": {"seccompProfile": {"type": "Unconfined"}}}
    assert messages(unconfined, allow_host_path=True, allow_privileged=True) != []
