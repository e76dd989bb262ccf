"""Timestamps as the API server writes them."""

import datetime

import pytest

from agentfleet.api import timestamps

NOW = datetime.datetime(2026, 11, 30, 12, 0, 1, 250000, tzinfo=datetime.UTC)


def test_time_and_micro_time_are_written_in_utc() -> None:
    assert timestamps.format_time(NOW) == "2026-11-30T12:00:01Z"
    assert timestamps.format_micro_time(NOW) == "2026-11-30T12:00:01.250000Z"
    elsewhere = NOW.astimezone(datetime.timezone(datetime.timedelta(hours=-5)))
    assert timestamps.format_micro_time(elsewhere) == "2026-11-30T12:00:01.250000Z"
    written = timestamps.parse(timestamps.format_time())
    assert written is not None
    assert abs((datetime.datetime.now(datetime.UTC) - written).total_seconds()) < 5


def test_both_forms_read_back() -> None:
    assert timestamps.parse("2026-11-30T12:00:01Z") == NOW.replace(microsecond=0)
    assert timestamps.parse("2026-11-30T12:00:01.250000Z") == NOW
    assert timestamps.parse("2026-11-30T07:00:01.25-05:00") == NOW


@pytest.mark.parametrize("text", [None, "", 7, "yesterday", "2026-11-30T12:00:01"])
def test_absent_unreadable_or_zoneless_is_none(text: object) -> None:
    assert timestamps.parse(text) is None
