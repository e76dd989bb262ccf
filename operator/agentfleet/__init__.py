"""agentfleet: a Kubernetes operator that runs AI agents from one AIAgent resource."""

__version__ = "0.1.0"
