"""Every example and edge case renders exactly as reviewed in tests/unit/golden/.

Regenerate after an intended change with `make golden` and review the diff.
"""

from __future__ import annotations

import pytest
import yaml

from agentfleet.render.children import desired_objects
from agentfleet.render.context import RenderContext
from tests.unit.conftest import GOLDEN, agent_from, example_bodies

CASES = {
    f"{b['metadata'].get('namespace', 'default')}-{b['metadata']['name']}": b
    for b in example_bodies()
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_render_matches_golden(case: str, request: pytest.FixtureRequest) -> None:
    body = CASES[case]
    agent = agent_from(
        body["spec"],
        name=body["metadata"]["name"],
        namespace=body["metadata"].get("namespace", "default"),
    )
    rendered = yaml.safe_dump_all(
        desired_objects(agent, RenderContext()), sort_keys=False, width=100
    )
    golden = GOLDEN / f"{case}.yaml"
    if request.config.getoption("--update-golden"):
        golden.write_text(rendered)
    assert golden.exists(), f"no golden file for {case}: run `make golden`"
    assert rendered == golden.read_text()
