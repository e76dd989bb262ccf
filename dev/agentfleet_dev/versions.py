"""Pinned versions of everything the local control plane is built from.

Bumping one of these rebuilds only that component: each is cached under its own
`<name>-<version>` directory.
"""

KUBERNETES = "v1.35.4"
ETCD = "v3.6.6"
KWOK = "v0.8.0"
HELM = "v3.19.0"

# Real peers that judge what the operator writes: KEDA's operator (at the version of the KEDA
# CRDs below) and istioctl. istio.io/istio publishes only pseudo-versions to the module proxy,
# and the proxy holds three (2026-04-23, -08-26, -08-27); none requires istio.io/api v1.28.0.
# The -08-26 one (release-1.30) needs an istio.io/api commit the proxy does not serve, so this
# is the closest buildable one, and ISTIO_API below is the istio.io/api its go.mod requires:
# istioctl and the cluster's Istio CRDs then come from the same API definitions.
ISTIO = "v0.0.0-20260423205519-b01690e6db7d"

# Upstream CRDs the operator's objects are validated against (read from the
# projects' own Go modules, never copied into this repository).
ISTIO_API = "v1.30.0-alpha.1.0.20260415171154-7fa57afdea51"
KEDA = "v2.18.0"
GATEWAY_API = "v1.4.0"
# ServiceMonitor, PodMonitor, PrometheusRule (the only release the module proxy serves).
PROMETHEUS_OPERATOR = "v0.85.0"
# Multi-Cluster Services (ServiceExport, ServiceImport): the newest release; it serves
# v1alpha1 (what Istio and the operator write) next to v1beta1.
MCS_API = "v0.5.2"

# The OTLP receiver the tracing tests send to: Jaeger v2 (`cmd/jaeger`, built on the
# OpenTelemetry Collector; module v1.75.0 is the Jaeger v2.12 release line), with an in-memory
# store and its query API.
JAEGER = "v1.75.0"
