"""`make soak`: an hour of churn against the local control plane (see soak/README.md)."""
