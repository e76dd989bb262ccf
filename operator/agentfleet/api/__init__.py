"""The API types: the AIAgent models (the single source of the CRD schema), constants
users see, quantities and the installation's configuration. Imports nothing of agentfleet."""
