"""The receiver under stress, against a real uvicorn server: a stalled database is answered 503
within seconds (and /healthz says so instead of hanging), slow or half-sent requests are cut off
with 408, oversized headers with 431."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import requests
from sqlalchemy import create_engine, text

from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.webhooks import WebhookSettings, create_app, serve_in_thread
from sunny_pipelines.webhooks.settings import TIME_BOUNDS
from sunny_pipelines_tests.webhooks.conftest import add_channel, channel_headers, inbox_rows

CALENDAR = "/webhooks/google/calendar"
# Short bounds so the tests take seconds; production defaults are a few seconds (settings.py).
STALL_BOUNDS = {
    "db_lock_timeout": 1.0,
    "db_statement_timeout": 2.0,
    "db_pool_timeout": 1.0,
    "health_timeout": 2.0,
}
CLIENT_BOUNDS = {"header_timeout": 1.0, "body_timeout": 1.0}
# What "within seconds" means here, with slack for a loaded 2-core machine.
STALL_ANSWER_BOUND = 5.0


@contextmanager
def serving(settings: WebhookSettings) -> Iterator[str]:
    base_url, stop = serve_in_thread(create_app(settings))
    try:
        yield base_url
    finally:
        stop()


@contextmanager
def holding(database: DatabaseResource, statement: str) -> Iterator[None]:
    """Another session holding a lock (``statement``) until the block ends."""
    engine = create_engine(database.url)
    conn = engine.connect()
    try:
        conn.execute(text(statement))
        yield
    finally:
        conn.rollback()
        conn.close()
        engine.dispose()


def timed_post(url: str, headers: dict[str, str]) -> tuple[int, dict[str, object], float]:
    start = time.monotonic()
    response = requests.post(url, headers=headers, timeout=30)
    return response.status_code, response.json(), time.monotonic() - start


def test_settings_bounds_from_env() -> None:
    defaults = WebhookSettings(database_url="postgresql://db/sunny")
    assert WebhookSettings.from_env({"SUNNY_DATABASE_URL": "postgresql://db/sunny"}) == defaults
    env = {variable: "1.5" for _field, variable in TIME_BOUNDS}
    env.update({"SUNNY_DATABASE_URL": "postgresql://db/sunny", "SUNNY_WEBHOOK_MAX_HEADER_BYTES": "8192"})
    settings = WebhookSettings.from_env(env)
    assert all(getattr(settings, field) == 1.5 for field, _variable in TIME_BOUNDS)
    assert settings.max_header_bytes == 8192
    options = defaults.engine_options()
    assert options["pool_timeout"] == 2.0
    assert options["connect_args"]["connect_timeout"] == 3
    assert options["connect_args"]["options"] == "-c lock_timeout=2000 -c statement_timeout=5000"
    with pytest.raises(ValueError, match="db_lock_timeout"):
        WebhookSettings(database_url="sqlite://", db_lock_timeout=0)


def test_stalled_inbox_table_is_503_within_seconds_and_healthz_says_so(
    settings: WebhookSettings, database: DatabaseResource, users: dict[str, str]
) -> None:
    add_channel(database, "ch-1")
    stalled = dataclasses.replace(settings, **STALL_BOUNDS)
    with serving(stalled) as base:
        with holding(database, "LOCK TABLE webhook_inbox IN ACCESS EXCLUSIVE MODE"):
            status, body, seconds = timed_post(base + CALENDAR, channel_headers("ch-1", number="10"))
            print(f"one notification during the stall: {status} after {seconds:.2f} s")
            assert (status, body) == (503, {"error": "database_unavailable"})
            assert seconds < STALL_ANSWER_BOUND

            # A burst larger than the receiver's 30 database slots: everyone gets 503 quickly,
            # those that queued for a slot after db_pool_timeout.
            def deliver(number: int) -> tuple[int, dict[str, object], float]:
                return timed_post(base + CALENDAR, channel_headers("ch-1", number=str(100 + number)))

            with ThreadPoolExecutor(60) as pool:
                burst = list(pool.map(deliver, range(60)))
            slowest = max(seconds for _status, _body, seconds in burst)
            print(f"burst of 60 during the stall: slowest 503 after {slowest:.2f} s")
            assert {status for status, _body, _seconds in burst} == {503}
            assert slowest < STALL_ANSWER_BOUND + 2

            start = time.monotonic()
            health = requests.get(base + "/healthz", timeout=30)
            health_seconds = time.monotonic() - start
            print(f"/healthz during the stall: {health.status_code} after {health_seconds:.2f} s")
            assert health.status_code == 503
            assert health.json()["database"] == "unavailable"
            assert health_seconds < STALL_ANSWER_BOUND

        # The stall is over: the next delivery (Google's retry) is stored.
        status, body, _seconds = timed_post(base + CALENDAR, channel_headers("ch-1", number="10"))
        assert (status, body["status"]) == (200, "accepted")
        assert requests.get(base + "/healthz", timeout=10).json()["database"] == "ok"
    assert [row["dedup_key"] for row in inbox_rows(database)] == ["google:ch-1:10"]


def test_row_lock_on_the_channel_does_not_stall_the_receiver(
    settings: WebhookSettings, database: DatabaseResource, users: dict[str, str]
) -> None:
    """The receiver only reads the channel row (no FOR UPDATE, no foreign key from the inbox),
    so a session holding its row lock (the renewal job) does not delay notifications."""
    add_channel(database, "ch-1")
    with (
        serving(dataclasses.replace(settings, **STALL_BOUNDS)) as base,
        holding(database, "SELECT id FROM watch_channels WHERE id = 'ch-1' FOR UPDATE"),
    ):
        status, body, seconds = timed_post(base + CALENDAR, channel_headers("ch-1", number="11"))
        print(f"notification while the channel row is locked: {status} after {seconds:.2f} s")
        assert (status, body["status"]) == (200, "accepted")
        assert seconds < STALL_ANSWER_BOUND


def test_statement_stall_on_the_channel_table_is_503(
    settings: WebhookSettings, database: DatabaseResource, users: dict[str, str]
) -> None:
    add_channel(database, "ch-1")
    with serving(dataclasses.replace(settings, **STALL_BOUNDS)) as base:
        with holding(database, "LOCK TABLE watch_channels IN ACCESS EXCLUSIVE MODE"):
            status, body, seconds = timed_post(base + CALENDAR, channel_headers("ch-1", number="12"))
            assert (status, body) == (503, {"error": "database_unavailable"})
            assert seconds < STALL_ANSWER_BOUND
            # /healthz checks the inbox table, which is free: the receiver reports itself healthy.
            assert requests.get(base + "/healthz", timeout=10).status_code == 200
        assert timed_post(base + CALENDAR, channel_headers("ch-1", number="12"))[0] == 200


# --- slow clients ------------------------------------------------------------------------------


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _read_until_closed(sock: socket.socket, limit: float = 10.0) -> tuple[bytes, float, bool]:
    """Everything the server sends until it closes (or ``limit`` passes): data, seconds, closed."""
    start = time.monotonic()
    data = b""
    sock.settimeout(0.2)
    while time.monotonic() - start < limit:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data, time.monotonic() - start, True
        if not chunk:
            return data, time.monotonic() - start, True
        data += chunk
    return data, time.monotonic() - start, False


@pytest.fixture
def slow_base(settings: WebhookSettings) -> Iterator[str]:
    with serving(dataclasses.replace(settings, **CLIENT_BOUNDS)) as base:
        yield base


@pytest.mark.parametrize(
    "sent",
    [b"", b"POST /webhooks/google/calendar HTTP/1.1\r\nHost: x\r\nX-Goog-Channel-ID: ch"],
    ids=["nothing", "half-headers"],
)
def test_half_sent_headers_are_408_and_closed(slow_base: str, sent: bytes) -> None:
    with _connect(slow_base) as sock:
        sock.sendall(sent)
        data, seconds, closed = _read_until_closed(sock)
    print(f"half-sent headers ({len(sent)} bytes): closed after {seconds:.2f} s")
    assert data.startswith(b"HTTP/1.1 408 ")
    assert data.endswith(b'{"error":"header_timeout"}')
    assert closed and 0.8 < seconds < 4


def test_half_sent_body_is_408_body_timeout_and_closed(slow_base: str, database: DatabaseResource) -> None:
    with _connect(slow_base) as sock:
        sock.sendall(b'POST /webhooks/attendee HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"a":')
        data, seconds, closed = _read_until_closed(sock)
    status_line = data.split(b"\r\n", 1)[0]
    print(f"half-sent body: {status_line!r}, closed after {seconds:.2f} s")
    assert data.startswith(b"HTTP/1.1 408 ")
    assert b'{"error":"body_timeout"}' in data
    assert closed and 0.8 < seconds < 4
    assert requests.get(slow_base + "/healthz", timeout=10).json()["rejected"] == {"body_timeout": 1}


def test_trickling_body_is_cut_off_even_while_bytes_arrive(slow_base: str) -> None:
    with _connect(slow_base) as sock:
        sock.sendall(b"POST /webhooks/attendee HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        start = time.monotonic()
        sock.settimeout(0.2)
        data = b""
        while time.monotonic() - start < 8:
            try:
                sock.sendall(b" ")
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
        seconds = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 408 ")
    assert seconds < 4


def test_early_answer_then_slow_body_closes_the_connection(slow_base: str) -> None:
    """A path the app answers without reading the body (404): the protocol's body deadline
    still closes the connection once the body is overdue."""
    with _connect(slow_base) as sock:
        sock.sendall(b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        data, seconds, closed = _read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 404 ")
    assert data.count(b"HTTP/1.1") == 1
    assert closed and seconds < 5


def test_keep_alive_connection_then_half_request_is_408(slow_base: str) -> None:
    with _connect(slow_base) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
        data, seconds, closed = _read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert closed and seconds < 4


@pytest.mark.parametrize("size", [100_000, 2_000_000])
def test_oversized_headers_are_431_over_uvicorn(slow_base: str, size: int) -> None:
    with _connect(slow_base) as sock:
        request = b"POST /webhooks/google/calendar HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
        # The server may answer and close before reading it all.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        data, _seconds, closed = _read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 431 ")
    assert data.endswith(b'{"error":"headers_too_large"}')
    assert closed


def test_slow_clients_do_not_keep_others_waiting(slow_base: str) -> None:
    stalled = [_connect(slow_base) for _ in range(50)]
    try:
        for sock in stalled:
            sock.sendall(b"POST /webhooks/attendee HTTP/1.1\r\nHost: x\r\n")
        start = time.monotonic()
        assert requests.get(slow_base + "/healthz", timeout=10).status_code == 200
        assert time.monotonic() - start < 2
        # ... and each of them is closed by its deadline.
        results = [_read_until_closed(sock, limit=6) for sock in stalled]
        assert all(closed for _data, _seconds, closed in results)
    finally:
        for sock in stalled:
            sock.close()
