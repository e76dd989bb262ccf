import pytest

from agentfleet.api.models import GPU
from agentfleet.render import gpu


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        (None, "cpu"),
        ({"count": 0}, "cpu"),
        ({"count": 1, "vram": "24Gi"}, "1x nvidia >=24Gi"),
        ({"count": 2, "product": "NVIDIA-L4", "sharing": "shared"}, "2x NVIDIA-L4 shared"),
        ({"count": 1, "vendor": "amd"}, "1x amd"),
    ],
)
def test_summary(spec: dict[str, object] | None, text: str) -> None:
    assert gpu.summary(GPU.model_validate(spec) if spec is not None else None) == text


def test_amd_gets_its_own_resource_and_no_nvidia_labels() -> None:
    amd = GPU.model_validate({"count": 2, "vendor": "amd", "vram": "64Gi"})
    assert gpu.resource_limits(amd) == {"amd.com/gpu": "2"}
    assert gpu.node_requirements(amd) == []
