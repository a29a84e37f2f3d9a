"""End to end with the sandbox: a real `events.watch` channel whose notifications (sent by the
sandbox exactly as Google sends them) reach the receiver over HTTP and land in the inbox."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import update

from sunny_pipelines.db.models import WatchChannel
from sunny_pipelines.db.secrets import channel_token_digest, new_channel_token
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.webhooks import WebhookSettings, create_app, serve_in_thread
from sunny_pipelines_tests.webhooks.conftest import inbox_rows


@pytest.fixture
def served(settings: WebhookSettings) -> Iterator[str]:
    base_url, stop = serve_in_thread(create_app(settings))
    yield base_url
    stop()


def test_sandbox_calendar_change_reaches_the_inbox(
    sandbox: Any, connected_users: list[dict[str, Any]], database: DatabaseResource, served: str
) -> None:
    user = connected_users[0]
    token = new_channel_token()
    # The channel row exists before `watch` is called, so the immediate `sync` authenticates.
    with database.begin() as conn:
        conn.execute(
            WatchChannel.__table__.insert().values(
                id="e2e-channel",
                user_id=user["id"],
                service="calendar_events",
                target="primary",
                token_hash=channel_token_digest(token),
                address=f"{served}/webhooks/google/calendar",
                expires_at=datetime.now(UTC) + timedelta(days=7),
                status="active",
            )
        )
    api = f"{sandbox.base_url}/calendar/v3/calendars/primary"
    auth = {"Authorization": f"Bearer {user['access_token']}"}
    address = f"{served}/webhooks/google/calendar"
    body = {"id": "e2e-channel", "type": "web_hook", "address": address, "token": token}
    watch = requests.post(f"{api}/events/watch", json=body, headers=auth, timeout=10)
    assert watch.status_code == 200, watch.text
    with database.begin() as conn:
        conn.execute(
            update(WatchChannel.__table__)
            .where(WatchChannel.id == "e2e-channel")
            .values(resource_id=watch.json()["resourceId"])
        )
    assert sandbox.world.wait_notifications_idle(5)

    start = datetime.now(UTC) + timedelta(days=1)
    event = {
        "summary": "Webhook e2e",
        "start": {"dateTime": start.isoformat()},
        "end": {"dateTime": (start + timedelta(hours=1)).isoformat()},
    }
    assert requests.post(f"{api}/events", json=event, headers=auth, timeout=10).status_code == 200
    assert sandbox.world.wait_notifications_idle(5)

    statuses = [(n["resource_state"], n["status"]) for n in sandbox.world.delivered_notifications]
    assert statuses == [("sync", 200), ("exists", 200)]
    [row] = inbox_rows(database)
    assert (row["source"], row["user_id"], row["status"]) == ("google_calendar", user["id"], "pending")
    assert row["dedup_key"] == "google:e2e-channel:2"
    assert row["payload"]["resource_id"] == watch.json()["resourceId"]
