"""The soak's arithmetic: the RSS trend, percentiles and the operator's histogram."""

from __future__ import annotations

import pytest

from soak.harness import fit_slope, percentile
from soak.operator import Samples, histogram_quantile


def test_the_slope_of_a_flat_noisy_series_is_zero_and_of_a_leak_its_rate() -> None:
    flat = [(t, 100.0 + (1 if t % 20 else -1)) for t in range(0, 1800, 10)]
    assert abs(fit_slope(flat)) < 1e-3
    leak = [(t, 100.0 + 0.01 * t) for t in range(0, 1800, 10)]  # 36 MiB an hour
    assert fit_slope(leak) * 3600 == pytest.approx(36.0)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0)) == (
        50.0,
        99.0,
        100.0,
    )
    assert percentile([], 0.5) is None


def test_histogram_quantile_interpolates_inside_the_bucket_like_prometheus() -> None:
    name = "controller_runtime_reconcile_time_seconds"

    def bucket(le: str, count: float, controller: str) -> Samples:
        return {(f"{name}_bucket", (("controller", controller), ("le", le))): count}

    samples: Samples = {}
    for controller in ("a", "b"):  # summed over the other labels
        samples |= bucket("0.1", 40, controller) | bucket("0.2", 50, controller)
        samples |= bucket("+Inf", 50, controller)
    assert histogram_quantile(samples, name, 0.5) == pytest.approx(0.1 * 50 / 80)
    assert histogram_quantile(samples, name, 0.9) == pytest.approx(0.1 + 0.1 * 10 / 20)
    assert histogram_quantile({}, name, 0.5) is None
