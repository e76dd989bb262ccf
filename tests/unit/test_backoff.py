"""The one retry policy: capped exponential backoff."""

from agentfleet.kube.backoff import Backoff


def test_each_failure_in_a_row_doubles_the_wait_up_to_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=30.0)
    assert [backoff.delay(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay(10_000) == 30.0  # no overflow however long it fails


def test_the_defaults_are_client_gos() -> None:
    assert (Backoff().base, Backoff().cap) == (0.5, 30.0)
    assert Backoff(0.01, 0.04).delay(0) == 0.01
