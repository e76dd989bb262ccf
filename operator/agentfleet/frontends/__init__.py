"""What people use: the CLI, the HTTP API and the importers; they act on AIAgents only."""
