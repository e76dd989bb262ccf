"""Fixtures only the integration tests need."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml

from tests.conftest import Cluster
from tests.integration.webhook import Webhook

WEBHOOK_LABEL = "agentfleet-test/mutating-webhook"
DENYING_WEBHOOK_LABEL = "agentfleet-test/denying-webhook"


@pytest.fixture(scope="session")
def mutating_webhook(cluster: Cluster) -> Iterator[str]:
    """A real mutating webhook for Deployments in namespaces labelled `<label>=on`; yields
    the label key."""
    with Webhook() as webhook:
        configuration = webhook.configuration("agentfleet-test-inject", WEBHOOK_LABEL)
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(configuration))
        try:
            yield WEBHOOK_LABEL
        finally:
            cluster.kubectl(
                "delete", "mutatingwebhookconfiguration", "agentfleet-test-inject", check=False
            )


@pytest.fixture(scope="session")
def denying_webhook(cluster: Cluster) -> Iterator[str]:
    """A real validating webhook that refuses Pods in namespaces labelled `<label>=on`; yields
    the label key."""
    with Webhook() as webhook:
        configuration = webhook.denying_configuration("agentfleet-test-deny", DENYING_WEBHOOK_LABEL)
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(configuration))
        try:
            yield DENYING_WEBHOOK_LABEL
        finally:
            cluster.kubectl(
                "delete", "validatingwebhookconfiguration", "agentfleet-test-deny", check=False
            )
