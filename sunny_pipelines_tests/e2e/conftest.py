"""Fixtures of the end-to-end tests (the daemon itself: `stack.daemon_stack`)."""

from __future__ import annotations

import pytest

from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines_tests.google_clients import GMAIL_TOPIC


@pytest.fixture
def push_google(database, cipher, sandbox, receiver) -> GoogleResource:
    """Google as the code location sees it with push on: channels and the Gmail watch deliver to
    the receiver."""
    return GoogleResource(
        database=database,
        cipher=cipher,
        sandbox_url=sandbox.base_url,
        push_receiver_url=receiver,
        gmail_pubsub_topic=GMAIL_TOPIC,
    )
