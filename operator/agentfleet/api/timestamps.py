"""Timestamps as the API server writes them (metav1.Time, metav1.MicroTime), read and written
in one place: conditions and Events, Lease renewals, ages shown to people.
"""

from __future__ import annotations

import datetime


def parse(text: object) -> datetime.datetime | None:
    """An RFC 3339 timestamp (Time or MicroTime) as an aware datetime; None when it is absent
    or unreadable (a Lease or an annotation anyone can write is no reason to fail)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def format_time(moment: datetime.datetime | None = None) -> str:
    """metav1.Time (whole seconds, UTC) of `moment`, or of now."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(moment: datetime.datetime | None = None) -> str:
    """metav1.MicroTime (microseconds, UTC), as Leases' renewTime wants it."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utc(moment: datetime.datetime | None) -> datetime.datetime:
    return (moment or datetime.datetime.now(datetime.UTC)).astimezone(datetime.UTC)
