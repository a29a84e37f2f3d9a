"""Fixtures for the sandbox's own tests: the suite's `sandbox` fixture seeded as these tests
expect, and a notification receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sunny_pipelines_tests.sandbox.helpers import Receiver


@pytest.fixture
def sandbox_seed() -> int:
    return 1


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()
