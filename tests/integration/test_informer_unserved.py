"""An informer of a kind the API server does not serve (an optional CRD not installed) counts
as listed at once, so the workers start: the operator must run without KEDA, Istio or the
Gateway API. Against the real API server's 404 for an unknown group."""

from __future__ import annotations

import asyncio
import os

import pytest

from agentfleet.kube import client as kube
from agentfleet.kube.informer import Informer
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster


async def test_an_unserved_kind_is_listed_at_once_and_a_served_one_too(cluster: Cluster) -> None:
    os.environ["KUBECONFIG"] = cluster.kubeconfig
    api = await kube.connect()
    seen: list[str] = []
    unserved = Informer(
        api, "nothing.agentfleet.io/v1", "Nothing", "nothings", "", lambda t, o: seen.append(t)
    )
    served = Informer(api, "v1", "ConfigMap", "configmaps", "", lambda t, o: seen.append(t))
    try:
        unserved.start()
        served.start()
        await asyncio.wait_for(unserved.synced.wait(), 10)
        await asyncio.wait_for(served.synced.wait(), 10)
        assert "ADDED" in seen  # kube-root-ca.crt of every namespace; nothing unserved
    finally:
        await unserved.stop()
        await served.stop()
        await api.close()
