"""The HTTP API's routes, one router per origin system, plus the kubelet's health check."""
