"""Health, database outages, settings, and the receiver behind a real uvicorn server."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from sqlalchemy.exc import OperationalError
from starlette.testclient import TestClient

from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.webhooks import WebhookSettings, attendee_signature, create_app, inbox, serve_in_thread
from sunny_pipelines.webhooks.server import RedactQueryString
from sunny_pipelines.webhooks.settings import GOOGLE_CERTS_URL
from sunny_pipelines_tests.webhooks.conftest import (
    ATTENDEE_SECRET,
    PUBSUB_SHARED_SECRET,
    add_channel,
    channel_headers,
    inbox_count,
    inbox_rows,
)

MISSING_DB = "postgresql+psycopg2://postgres@127.0.0.1:5432/sunny_webhooks_no_such_database"


def test_healthz_reports_database_and_counters(
    client: TestClient, database: DatabaseResource, users: dict[str, str]
) -> None:
    add_channel(database, "ch-1")
    client.post("/webhooks/google/calendar", headers=channel_headers("ch-1"))
    client.post("/webhooks/google/calendar", headers=channel_headers("ch-1"))
    client.post("/webhooks/google/calendar", headers=channel_headers("ch-x"))
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "accepted": 1,
        "duplicates": 1,
        "sync": 0,
        "rejected": {"unknown_channel": 1},
    }


def test_database_down_answers_503_and_stores_nothing(
    database: DatabaseResource, users: dict[str, str], make_client: Callable[[WebhookSettings], TestClient]
) -> None:
    settings = WebhookSettings(
        database_url=MISSING_DB,
        attendee_webhook_secret=ATTENDEE_SECRET,
        pubsub_shared_secret=PUBSUB_SHARED_SECRET,
    )
    client = make_client(settings)
    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.json()["database"] == "unavailable"

    calendar = client.post("/webhooks/google/calendar", headers=channel_headers("ch-1"))
    assert calendar.status_code == 503
    assert calendar.json() == {"error": "database_unavailable"}
    payload = {"idempotency_key": "k", "trigger": "bot.state_change"}
    signature = attendee_signature(payload, settings.attendee_key() or b"")
    attendee = client.post("/webhooks/attendee", json=payload, headers={"X-Webhook-Signature": signature})
    assert attendee.status_code == 503
    gmail = client.post(
        f"/webhooks/google/gmail?token={PUBSUB_SHARED_SECRET}",
        json={"message": {"data": "e30=", "messageId": "m"}, "subscription": "s"},
    )
    assert gmail.status_code == 503
    assert client.get("/healthz").json()["rejected"] == {"database_unavailable": 3}
    # Bad input is still answered 4xx without touching the database.
    assert client.post("/webhooks/google/calendar").status_code == 400


def test_failure_inside_the_transaction_leaves_no_row(
    client: TestClient, database: DatabaseResource, users: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_insert = inbox.insert_inbox_row

    def insert_then_fail(*args: Any, **kwargs: Any) -> int | None:
        real_insert(*args, **kwargs)
        raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(inbox, "insert_inbox_row", insert_then_fail)
    add_channel(database, "ch-1")
    response = client.post("/webhooks/google/calendar", headers=channel_headers("ch-1"))
    assert response.status_code == 503
    assert inbox_count(database) == 0


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "SUNNY_DATABASE_URL": "postgresql://u:pw@db/sunny",
        "SUNNY_ATTENDEE_WEBHOOK_SECRET": ATTENDEE_SECRET,
        "SUNNY_PUBSUB_AUDIENCE": "aud",
        "SUNNY_PUBSUB_SERVICE_ACCOUNT": "sa@x.iam.gserviceaccount.com",
        "SUNNY_PUBSUB_SHARED_SECRET": "shh-secret",
        "SUNNY_SANDBOX_URL": "http://127.0.0.1:8765/",
    }
    settings = WebhookSettings.from_env(env)
    assert settings.database_url == "postgresql+psycopg2://u:pw@db/sunny"
    assert settings.pubsub_certs_url == "http://127.0.0.1:8765/oauth2/v1/certs"
    assert settings.oidc_enabled
    assert settings.max_body_bytes == 64 * 1024
    # Secrets (and the URL's password) stay out of repr, hence out of any log of the settings.
    assert not any(secret in repr(settings) for secret in ("pw", ATTENDEE_SECRET, "shh-secret"))

    explicit = WebhookSettings.from_env({**env, "SUNNY_PUBSUB_CERTS_URL": "http://certs.local/c"})
    assert explicit.pubsub_certs_url == "http://certs.local/c"
    assert WebhookSettings.from_env({"SUNNY_DATABASE_URL": "sqlite://"}).pubsub_certs_url == GOOGLE_CERTS_URL
    with pytest.raises(ValueError, match="not valid base64") as raised:
        WebhookSettings.from_env({**env, "SUNNY_ATTENDEE_WEBHOOK_SECRET": "***not-base64***"})
    assert "***not-base64***" not in str(raised.value)


def test_access_log_filter_redacts_query_strings() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "POST", "/webhooks/google/gmail?token=s3cret", "1.1", 200), None,
    )  # fmt: skip
    RedactQueryString().filter(record)
    assert "s3cret" not in record.getMessage()
    assert "/webhooks/google/gmail?[redacted]" in record.getMessage()


@pytest.fixture
def served(settings: WebhookSettings) -> Iterator[str]:
    base_url, stop = serve_in_thread(create_app(settings), "127.0.0.1", port=0)
    yield base_url
    stop()


def test_real_server_over_http(served: str, database: DatabaseResource, users: dict[str, str]) -> None:
    add_channel(database, "ch-1", user_id=users["bob"])
    with requests.Session() as http:
        first = http.post(f"{served}/webhooks/google/calendar", headers=channel_headers("ch-1", number="3"))
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "accepted"

        # Google redelivering concurrently: every delivery is 2xx, exactly one row.
        def deliver(_: int) -> int:
            return requests.post(
                f"{served}/webhooks/google/calendar", headers=channel_headers("ch-1", number="4"), timeout=10
            ).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(deliver, range(16))) == {200}

        # A chunked body (no Content-Length) is cut off at the limit.
        body = (b"x" * 8192 for _ in range(16))
        chunked = http.post(f"{served}/webhooks/attendee", data=body, headers={"X-Webhook-Signature": "A"})
        assert chunked.status_code == 413
        assert http.get(f"{served}/webhooks/attendee").status_code == 405
        health = http.get(f"{served}/healthz").json()
    assert [row["dedup_key"] for row in inbox_rows(database)] == ["google:ch-1:3", "google:ch-1:4"]
    assert inbox_rows(database)[0]["user_id"] == users["bob"]
    assert (health["accepted"], health["duplicates"]) == (2, 15)
    assert health["rejected"] == {"body_too_large": 1, "method_not_allowed": 1}


def test_real_server_refuses_a_declared_oversized_body_without_waiting_for_it(served: str) -> None:
    host, port = served.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"POST /webhooks/attendee HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000000\r\n\r\n{"
        )
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413")
