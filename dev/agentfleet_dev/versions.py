"""Pinned versions of everything the local control plane is built from.

Bumping one of these rebuilds only that component: each is cached under its own
`<name>-<version>` directory.
"""

KUBERNETES = "v1.35.4"
ETCD = "v3.6.6"
KWOK = "v0.8.0"
HELM = "v3.19.0"

# Upstream CRDs the operator's objects are validated against (read from the
# projects' own Go modules, never copied into this repository).
ISTIO_API = "v1.28.0"
KEDA = "v2.18.0"
GATEWAY_API = "v1.4.0"
