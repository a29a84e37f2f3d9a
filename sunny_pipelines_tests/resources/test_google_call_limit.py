"""The bound on Google calls in flight in one run process (SUNNY_GOOGLE_CONCURRENCY), against the
sandbox over HTTP: the sandbox awaits injected latency without blocking, so unbounded calls
overlap, and bounded ones queue."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sunny_pipelines.resources.google import CallLimit, GoogleResource, call_limit

LATENCY_MS = 400
CALLS = 6


def timed_parallel_calls(database, cipher, sandbox, users: list[dict], limit: int) -> tuple[float, CallLimit]:
    """``CALLS`` calendar list calls from as many threads (each its own user session), each
    answered after ``LATENCY_MS``; returns the seconds they took and the process's limit."""
    google = GoogleResource(
        database=database, cipher=cipher, sandbox_url=sandbox.base_url, max_concurrent_calls=limit
    )
    sessions = [google.session(users[i % len(users)]["id"]) for i in range(CALLS)]
    shared = call_limit(limit)
    shared.peak = shared.in_flight  # this process's limit of this size may have served other tests
    sandbox.world.inject_fault("latency", count=CALLS, latency_ms=LATENCY_MS)

    def call(session) -> dict:
        return session.execute(session.calendar().calendarList().list())

    started = time.monotonic()
    with ThreadPoolExecutor(CALLS) as threads:
        pages = list(threads.map(call, sessions))
    elapsed = time.monotonic() - started
    assert all("items" in page for page in pages)
    assert sum(session.api_calls for session in sessions) == CALLS
    return elapsed, shared


def test_google_calls_of_one_process_never_exceed_the_limit(database, cipher, sandbox, connected_users):
    elapsed, limit = timed_parallel_calls(database, cipher, sandbox, connected_users, limit=2)
    assert limit.peak == 2 and limit.in_flight == 0
    # Two at a time: three rounds of the injected latency at least.
    assert elapsed >= 3 * LATENCY_MS / 1000 * 0.95, elapsed


def test_without_a_tight_limit_the_same_calls_overlap(database, cipher, sandbox, connected_users):
    """The control: the sandbox answers these calls concurrently, so the bound above is ours."""
    _, limit = timed_parallel_calls(database, cipher, sandbox, connected_users, limit=CALLS)
    assert limit.peak > 2


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError, match="SUNNY_GOOGLE_CONCURRENCY"):
        CallLimit(0)
