"""Metrics (and later traces and logs) every layer may report to."""
