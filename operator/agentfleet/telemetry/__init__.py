"""What every layer may report: metrics, traces (tracing.py) and structured logs (logs.py)."""
