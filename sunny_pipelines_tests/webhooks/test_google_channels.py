"""Calendar and Drive channel notifications: authenticated by the channel row, queued once."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines_tests.webhooks.conftest import (
    add_channel,
    channel_headers,
    inbox_count,
    inbox_rows,
    rejected_count,
)

CALENDAR = "/webhooks/google/calendar"
DRIVE = "/webhooks/google/drive"


def test_calendar_notification_becomes_one_pending_row(
    client: TestClient, database: DatabaseResource, users: dict[str, str]
) -> None:
    add_channel(database, "ch-1", user_id=users["bob"])
    response = client.post(CALENDAR, headers=channel_headers("ch-1"))
    assert response.status_code == 200
    assert response.json()["status"] == "accepted"

    [row] = inbox_rows(database)
    assert row["id"] == response.json()["id"]
    assert row["source"] == "google_calendar"
    assert row["user_id"] == users["bob"]
    assert row["channel_id"] == "ch-1"
    assert row["dedup_key"] == "google:ch-1:7"
    assert row["status"] == "pending"
    assert row["attempts"] == 0
    assert row["payload"]["resource_state"] == "exists"
    assert row["payload"]["resource_id"] == "res-1"
    assert row["payload"]["message_number"] == 7
    assert row["payload"]["service"] == "calendar_events"
    assert row["payload"]["target"] == "primary"
    assert row["payload"]["resource_uri"].startswith("https://www.googleapis.com/calendar/v3/")
    assert client.get("/healthz").json()["accepted"] == 1


def test_calendar_list_channel_is_accepted_on_calendar_endpoint(
    client: TestClient, database: DatabaseResource, users: dict[str, str]
) -> None:
    add_channel(database, "ch-list", service="calendar_list", target=None)
    assert client.post(CALENDAR, headers=channel_headers("ch-list")).status_code == 200
    assert inbox_rows(database)[0]["payload"]["service"] == "calendar_list"


def test_drive_notification_keeps_changed(
    client: TestClient, database: DatabaseResource, users: dict[str, str]
) -> None:
    add_channel(database, "ch-drive", service="drive", target="changes")
    headers = channel_headers(
        "ch-drive", state="change", number="12", **{"X-Goog-Changed": "content, parents"}
    )
    response = client.post(DRIVE, headers=headers)
    assert response.status_code == 200, response.text
    [row] = inbox_rows(database)
    assert row["source"] == "google_drive"
    assert row["dedup_key"] == "google:ch-drive:12"
    assert row["payload"]["changed"] == ["content", "parents"]
    assert row["payload"]["resource_state"] == "change"


def test_sync_handshake_is_acknowledged_not_queued(
    client: TestClient, database: DatabaseResource, users: dict[str, str]
) -> None:
    add_channel(database, "ch-1")
    response = client.post(CALENDAR, headers=channel_headers("ch-1", state="sync", number="1"))
    assert response.status_code == 200
    assert response.json() == {"status": "sync"}
    assert inbox_count(database) == 0


def test_redelivery_is_a_duplicate(
    client: TestClient, database: DatabaseResource, users: dict[str, str]
) -> None:
    add_channel(database, "ch-1")
    first = client.post(CALENDAR, headers=channel_headers("ch-1", number="9"))
    again = client.post(CALENDAR, headers=channel_headers("ch-1", number="9"))
    assert first.status_code == again.status_code == 200
    assert again.json() == {"status": "duplicate"}
    assert inbox_count(database) == 1
    # A new message number on the same channel is a new notification.
    assert client.post(CALENDAR, headers=channel_headers("ch-1", number="10")).json()["status"] == "accepted"
    assert inbox_count(database) == 2
    health = client.get("/healthz").json()
    assert (health["accepted"], health["duplicates"]) == (2, 1)


@pytest.mark.parametrize(
    "header",
    [
        "X-Goog-Channel-ID",
        "X-Goog-Channel-Token",
        "X-Goog-Resource-ID",
        "X-Goog-Resource-State",
        "X-Goog-Message-Number",
    ],
)
def test_missing_header_is_400(
    client: TestClient, database: DatabaseResource, users: dict[str, str], header: str
) -> None:
    add_channel(database, "ch-1")
    headers = channel_headers("ch-1")
    del headers[header]
    response = client.post(CALENDAR, headers=headers)
    assert response.status_code == 400
    assert response.json() == {"error": "missing_header"}
    assert inbox_count(database) == 0
    assert rejected_count(client, "missing_header") == 1


@pytest.mark.parametrize("number", ["seven", "-1", "1.5", "99999999999999999999"])
def test_bad_message_number_is_400(
    client: TestClient, database: DatabaseResource, users: dict[str, str], number: str
) -> None:
    add_channel(database, "ch-1")
    response = client.post(CALENDAR, headers=channel_headers("ch-1", number=number))
    assert response.status_code == 400
    assert response.json() == {"error": "bad_header"}
    assert inbox_count(database) == 0


@pytest.mark.parametrize(
    ("setup", "path", "headers", "status", "reason"),
    [
        (None, CALENDAR, {}, 404, "unknown_channel"),
        ({"service": "drive"}, CALENDAR, {}, 404, "wrong_endpoint"),
        ({}, DRIVE, {}, 404, "wrong_endpoint"),
        ({}, CALENDAR, {"token": "not-the-token"}, 403, "bad_channel_token"),
        ({}, CALENDAR, {"resource_id": "res-other"}, 403, "resource_mismatch"),
        ({"status": "stopped"}, CALENDAR, {}, 403, "channel_inactive"),
        ({"status": "replaced"}, CALENDAR, {}, 403, "channel_inactive"),
        ({"status": "expired"}, CALENDAR, {}, 403, "channel_expired"),
        ({"expires_in": timedelta(seconds=-1)}, CALENDAR, {}, 403, "channel_expired"),
    ],
    ids=[
        "unknown",
        "drive-channel-on-calendar",
        "calendar-channel-on-drive",
        "wrong-token",
        "wrong-resource",
        "stopped",
        "replaced",
        "status-expired",
        "past-expiry",
    ],
)
def test_channel_rejections(
    client: TestClient,
    database: DatabaseResource,
    users: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    setup: dict | None,
    path: str,
    headers: dict[str, str],
    status: int,
    reason: str,
) -> None:
    if setup is not None:
        add_channel(database, "ch-1", **setup)
    caplog.set_level(logging.WARNING, logger="sunny_pipelines.webhooks")
    # Even a sync handshake is refused on a channel that does not authenticate.
    for state in ("exists", "sync"):
        response = client.post(path, headers=channel_headers("ch-1", state=state, **headers))
        assert response.status_code == status
        assert response.json() == {"error": reason}
    assert inbox_count(database) == 0
    assert rejected_count(client, reason) == 2
    logged = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert logged and all(reason in r.getMessage() and "'ch-1'" in r.getMessage() for r in logged)
    # The channel token is a secret: it never reaches a log line.
    assert not any(
        "channel-token-secret" in r.getMessage() or "not-the-token" in r.getMessage() for r in logged
    )


def test_channel_without_recorded_expiry_is_accepted(
    client: TestClient, database: DatabaseResource, users: dict[str, str]
) -> None:
    add_channel(database, "ch-1", expires_in=None)
    assert client.post(CALENDAR, headers=channel_headers("ch-1")).status_code == 200
    assert inbox_count(database) == 1


def test_wrong_method_and_unknown_path(client: TestClient, database: DatabaseResource) -> None:
    response = client.get(CALENDAR)
    assert response.status_code == 405
    assert response.json() == {"error": "method_not_allowed"}
    assert "POST" in response.headers["allow"]
    assert client.put("/webhooks/attendee", content=b"{}").status_code == 405
    assert client.post("/webhooks/google/nope").status_code == 404
    assert rejected_count(client, "method_not_allowed") == 2
    assert inbox_count(database) == 0


def test_oversized_body_with_content_length(
    client: TestClient, database: DatabaseResource, users: dict[str, str]
) -> None:
    add_channel(database, "ch-1")
    response = client.post(CALENDAR, headers=channel_headers("ch-1"), content=b"x" * (64 * 1024 + 1))
    assert response.status_code == 413
    assert response.json() == {"error": "body_too_large"}
    assert inbox_count(database) == 0


def test_oversized_body_without_content_length(
    client: TestClient, database: DatabaseResource, users: dict[str, str]
) -> None:
    add_channel(database, "ch-1")

    def chunks():
        for _ in range(100):
            yield b"y" * 1024

    response = client.post(CALENDAR, headers=channel_headers("ch-1"), content=chunks())
    assert response.status_code == 413
    assert inbox_count(database) == 0


def test_oversized_body_with_lying_content_length(
    client: TestClient, database: DatabaseResource, users: dict[str, str]
) -> None:
    add_channel(database, "ch-1")
    headers = channel_headers("ch-1", **{"Content-Length": "10"})
    response = client.post(CALENDAR, headers=headers, content=b"z" * (70 * 1024))
    assert response.status_code == 413
    assert inbox_count(database) == 0
    assert rejected_count(client, "body_too_large") == 1


def test_small_body_is_tolerated(
    client: TestClient, database: DatabaseResource, users: dict[str, str]
) -> None:
    add_channel(database, "ch-1")
    response = client.post(CALENDAR, headers=channel_headers("ch-1"), content=b'{"kind": "api#channel"}')
    assert response.status_code == 200
    assert inbox_count(database) == 1
