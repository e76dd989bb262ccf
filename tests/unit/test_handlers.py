"""How the runtime configures kopf's watches and API retries."""

import itertools

import kopf

from agentfleet.api.config import OperatorConfig
from agentfleet.runtime.handlers import Backoffs, configure


def test_silent_watches_end_by_timeouts_not_by_kopfs_inactivity_timer() -> None:
    """kopf's inactivity timer can cancel the task that consumes a watch (and the watch is
    never restarted); the server and client timeouts bound a silent watch instead, within
    the inactivity period."""
    settings = kopf.OperatorSettings()
    configure(settings, OperatorConfig(watch_inactivity_seconds=70))
    assert settings.watching.inactivity_timeout >= 10**9
    assert settings.watching.server_timeout == 56
    assert settings.watching.client_timeout == 70
    short = kopf.OperatorSettings()
    configure(short, OperatorConfig(watch_inactivity_seconds=3))
    assert (short.watching.server_timeout, short.watching.client_timeout) == (2, 3)


def test_api_requests_are_retried_without_end_from_the_start_each_time() -> None:
    """kopf's default gives up after 8 tries; a watch that gives up ends the operator."""
    settings = kopf.OperatorSettings()
    configure(settings, OperatorConfig())
    backoffs = settings.networking.error_backoffs
    assert isinstance(backoffs, Backoffs)
    first = list(itertools.islice(backoffs, 100))
    assert first[:5] == [1, 1, 2, 3, 5] and max(first) == 5 and len(first) == 100
    assert list(itertools.islice(backoffs, 3)) == [1, 1, 2]  # a fresh iterator per request
