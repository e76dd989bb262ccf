"""The one client against a real API server: what each refusal becomes (ApiError and its
predicates, with the server's own words), and a watch's events."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from agentfleet.api import constants as c
from agentfleet.kube.client import AGENTS, ApiError, Kube, Ref, Target, connect
from agentfleet.kube.informer import Informer
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster


def config_map(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"a": "1"},
    }


async def refusal(request: Any) -> ApiError:
    with pytest.raises(ApiError) as refused:
        await request
    return refused.value


async def test_refusals_carry_the_servers_reason_and_message(
    cluster: Cluster, crd: None, namespace: str
) -> None:
    configmaps = Ref("v1", "configmaps", namespace, "", "ConfigMap")
    async with await connect(Target(kubeconfig=cluster.kubeconfig)) as kube:
        missing = await refusal(kube.request("GET", AGENTS.ref(namespace, "nobody")))
        assert missing.not_found and not missing.unserved and missing.reason == "NotFound"
        assert missing.message == f'{c.PLURAL}.{c.GROUP} "nobody" not found'
        assert await kube.get(AGENTS.ref(namespace, "nobody")) is None

        unserved = Ref("example.com/v1", "widgets", namespace, "w", "Widget")
        absent_kind = await refusal(kube.request("GET", unserved))
        assert absent_kind.unserved
        with pytest.raises(ApiError):  # a missing kind is not a missing object
            await kube.get(unserved)

        await kube.request("POST", configmaps, body=config_map(namespace, "one"))
        twice = await refusal(kube.request("POST", configmaps, body=config_map(namespace, "one")))
        assert twice.already_exists and twice.transient

        bad = config_map(namespace, "Not_A_Name")
        invalid = await refusal(kube.request("POST", configmaps, body=bad))
        assert invalid.invalid and invalid.reason == "Invalid" and "Not_A_Name" in invalid.message


async def watch_names(kube: Kube, ref: Ref, version: str) -> list[tuple[str, str]]:
    query = [("resourceVersion", version), ("timeoutSeconds", "3")]
    seen = []
    async with contextlib.aclosing(kube.watch(ref, query)) as events:
        async for kind, obj in events:
            seen.append((kind, obj["metadata"]["name"]))
            if len(seen) == 2:
                break
    return seen


async def test_a_watch_sees_the_changes_since_a_version(cluster: Cluster, namespace: str) -> None:
    configmaps = Ref("v1", "configmaps", namespace, "", "ConfigMap")
    async with await connect(Target(kubeconfig=cluster.kubeconfig)) as kube:
        version = (await kube.request("GET", configmaps))["metadata"]["resourceVersion"]
        await kube.request("POST", configmaps, body=config_map(namespace, "first"))
        await kube.request("DELETE", Ref("v1", "configmaps", namespace, "first", "ConfigMap"))
        seen = await asyncio.wait_for(watch_names(kube, configmaps, version), timeout=30)
        assert seen == [("ADDED", "first"), ("DELETED", "first")]


async def test_an_informer_lists_and_watches_and_an_unserved_kind_counts_as_listed(
    cluster: Cluster, namespace: str
) -> None:
    """The operator starts once every informer has listed: a kind whose CRD is not installed
    (an optional feature) must not hold that up."""
    seen: list[tuple[str, str]] = []
    async with await connect(Target(kubeconfig=cluster.kubeconfig)) as kube:
        configmaps = Informer(
            kube, "v1", "ConfigMap", "configmaps", "informed=yes",
            lambda kind, obj: seen.append((kind, obj["metadata"]["name"])),
            namespaces=(namespace,),
        )  # fmt: skip
        widgets = Informer(
            kube, "example.com/v1", "Widget", "widgets", "", lambda *_: None, retry_seconds=1
        )
        configmaps.start()
        widgets.start()
        try:
            await asyncio.wait_for(configmaps.synced.wait(), timeout=30)
            await asyncio.wait_for(widgets.synced.wait(), timeout=30)
            labelled = config_map(namespace, "informed")
            labelled["metadata"]["labels"] = {"informed": "yes"}
            configmaps_ref = Ref("v1", "configmaps", namespace, "", "ConfigMap")
            await kube.request("POST", configmaps_ref, body=config_map(namespace, "ignored"))
            await kube.request("POST", configmaps_ref, body=labelled)  # after: seen after it
            for _ in range(300):
                if seen:
                    break
                await asyncio.sleep(0.1)
            assert seen == [("ADDED", "informed")]  # server-side filtered by the label
        finally:
            await configmaps.stop()
            await widgets.stop()
