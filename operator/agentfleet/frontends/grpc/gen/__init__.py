"""Generated from proto/ by `make protos` (grpcio-tools). Do not edit."""
