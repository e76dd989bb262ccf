"""The gRPC control API (agentfleet.v1.ComputeAgent, proto/): imported only by `agentfleet api`,
never by the operator, so the operator process does not load grpc."""
