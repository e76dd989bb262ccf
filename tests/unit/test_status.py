from typing import Any

from agentfleet.api.models import AIAgent
from agentfleet.controllers.status import Problem, desired_status, pending_features, rollout
from tests.unit.conftest import agent_from

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def deployment(
    replicas: int = 3,
    ready: int = 3,
    generation: int = 1,
    observed: int = 1,
    updated: int | None = None,
    conditions: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"name": "demo", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "updatedReplicas": replicas if updated is None else updated,
            "conditions": conditions or [],
        },
    }


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_available_deployment_is_ready(minimal_agent: AIAgent) -> None:
    status = desired_status(minimal_agent, deployment(), None, None, "cluster.local", T0)
    assert conditions(status) == {
        "Ready": ("True", "Available"),
        "Reconciling": ("False", "Reconciled"),
        "Stalled": ("False", "Reconciled"),
    }
    assert status["observedGeneration"] == 1
    assert (status["replicas"], status["readyReplicas"], status["availableReplicas"]) == (3, 3, 3)
    assert status["selector"] == "app.kubernetes.io/instance=demo,app.kubernetes.io/name=aiagent"
    assert status["endpoints"]["grpc"] == "demo.team-a.svc.cluster.local:9090"
    assert status["placement"] == {"summary": "cpu"}


def test_rollout_in_progress_is_reconciling(minimal_agent: AIAgent) -> None:
    status = desired_status(minimal_agent, deployment(ready=1), None, None, "cluster.local", T0)
    assert conditions(status)["Ready"] == ("False", "Progressing")
    assert conditions(status)["Reconciling"] == ("True", "Progressing")
    ready = status["conditions"][0]
    assert ready["message"] == "1 of 3 replicas available"


def test_unobserved_generation_is_not_ready_even_if_replicas_are() -> None:
    state = rollout(deployment(generation=2, observed=1))
    assert not state.done and "observe" in state.message


def test_progress_deadline_is_stalled(minimal_agent: AIAgent) -> None:
    stuck = deployment(
        ready=0,
        conditions=[
            {
                "type": "Progressing",
                "reason": "ProgressDeadlineExceeded",
                "message": "ReplicaSet demo-1 has timed out progressing.",
            }
        ],
    )
    status = desired_status(minimal_agent, stuck, None, None, "cluster.local", T0)
    assert conditions(status)["Stalled"] == ("True", "ProgressDeadlineExceeded")
    assert conditions(status)["Ready"][0] == "False"


def test_pods_the_cluster_refuses_stall_the_agent_with_the_clusters_message(
    minimal_agent: AIAgent,
) -> None:
    refused = {
        "type": "ReplicaFailure",
        "status": "True",
        "reason": "FailedCreate",
        "message": 'pods "demo-1-x" is forbidden: exceeded quota: pods, requested: pods=1',
    }
    progressing = {"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "m"}
    stuck = deployment(ready=0, updated=0, conditions=[progressing, refused])
    status = desired_status(minimal_agent, stuck, None, None, "cluster.local", T0)
    assert conditions(status)["Stalled"] == ("True", "FailedCreate")
    assert conditions(status)["Ready"] == ("False", "FailedCreate")
    ready = next(x for x in status["conditions"] if x["type"] == "Ready")
    assert ready["message"] == (
        "0 of 3 replicas available; the cluster refuses the pods of Deployment demo: "
        + refused["message"]
    )
    # Lifted: the ReplicaSet controller creates the pods and drops the condition.
    healed = desired_status(minimal_agent, deployment(), None, status, "cluster.local", T1)
    assert conditions(healed)["Ready"] == ("True", "Available")
    assert conditions(healed)["Stalled"] == ("False", "Reconciled")
    # A long message from the cluster is cut, so a status patch cannot grow without bound.
    long = deployment(ready=0, conditions=[{**refused, "message": "x" * 100_000}])
    assert len(rollout(long).message) < 5000


def test_problem_is_stalled_with_its_message(minimal_agent: AIAgent) -> None:
    problem = Problem(
        "ApplyFailed", "Deployment demo was rejected by the API server (422): bad volume"
    )
    status = desired_status(minimal_agent, None, problem, None, "cluster.local", T0)
    assert conditions(status)["Stalled"] == ("True", "ApplyFailed")
    assert status["conditions"][0]["message"].endswith("bad volume")


def test_transition_time_only_moves_when_status_changes(minimal_agent: AIAgent) -> None:
    first = desired_status(minimal_agent, deployment(ready=1), None, None, "cluster.local", T0)
    same = desired_status(minimal_agent, deployment(ready=2), None, first, "cluster.local", T1)
    assert [c["lastTransitionTime"] for c in same["conditions"]] == [T0, T0, T0]
    done = desired_status(minimal_agent, deployment(), None, same, "cluster.local", T1)
    times = {c["type"]: c["lastTransitionTime"] for c in done["conditions"]}
    assert times == {"Ready": T1, "Reconciling": T1, "Stalled": T0}


def test_recomputing_an_unchanged_agent_is_identical(minimal_agent: AIAgent) -> None:
    first = desired_status(minimal_agent, deployment(), None, None, "cluster.local", T0)
    assert desired_status(minimal_agent, deployment(), None, first, "cluster.local", T1) == first


def test_scaled_to_zero_is_ready() -> None:
    agent = agent_from({"agentType": "coding", "image": "i", "replicas": 0})
    status = desired_status(agent, deployment(replicas=0, ready=0), None, None, "cluster.local", T0)
    assert conditions(status)["Ready"] == ("True", "ScaledToZero")


def test_mesh_settings_that_render_nothing_say_why() -> None:
    """Mesh settings without a mode, where the operator's default mode is none: MeshReady
    explains instead of staying silent; an explicit mode none is a choice, not a problem."""
    agent = agent_from({"agentType": "coding", "image": "i", "mesh": {}})
    features = pending_features(agent, served=frozenset())
    status = desired_status(agent, deployment(), None, None, "cluster.local", T0, features)
    assert conditions(status)["MeshReady"] == ("False", "Disabled")
    explicit = agent_from({"agentType": "coding", "image": "i", "mesh": {"mode": "none"}})
    assert pending_features(explicit, served=frozenset()) == []
