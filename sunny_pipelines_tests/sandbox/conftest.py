"""Fixtures for the sandbox's own tests: a freshly seeded sandbox served on a free port, and a
notification receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sunny_pipelines.sandbox.server import SandboxServer
from sunny_pipelines_tests.sandbox.helpers import Receiver


@pytest.fixture
def sb() -> Iterator[SandboxServer]:
    server = SandboxServer(host="127.0.0.1", port=0, users=3, events_per_user=12, seed=1).start()
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()
