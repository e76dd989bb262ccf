"""The deploy-agent-compatible HTTP API."""
