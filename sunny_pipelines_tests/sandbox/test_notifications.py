"""Push channels: events.watch / calendarList.watch, notification delivery, channels.stop, drop rate."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import requests
from googleapiclient.errors import HttpError

from sunny_pipelines.sandbox.server import SandboxServer
from sunny_pipelines_tests.google_clients import calendar_client
from sunny_pipelines_tests.sandbox.helpers import Receiver


def _event(summary: str) -> dict[str, Any]:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    return {
        "summary": summary,
        "start": {"dateTime": start.isoformat()},
        "end": {"dateTime": (start + timedelta(hours=1)).isoformat()},
    }


def test_events_watch_delivers_sync_then_exists(sandbox: SandboxServer, receiver: Receiver) -> None:
    user = sandbox.world.list_users()[0]
    service = calendar_client(sandbox, user)
    expiration = int((time.time() + 3600) * 1000)
    channel = (
        service.events()
        .watch(
            calendarId="primary",
            body={
                "id": "chan-1",
                "type": "web_hook",
                "address": receiver.url,
                "token": "secret-1",
                "expiration": str(expiration),
            },
        )
        .execute()
    )
    assert channel["kind"] == "api#channel" and channel["id"] == "chan-1" and channel["token"] == "secret-1"
    assert channel["expiration"] == str(expiration)
    assert channel["resourceUri"].startswith(sandbox.base_url + "/calendar/v3/calendars/")
    sync = receiver.wait_for(1)[0]
    assert sync["X-Goog-Resource-State"] == "sync"
    assert sync["X-Goog-Channel-ID"] == "chan-1" and sync["X-Goog-Channel-Token"] == "secret-1"
    assert sync["X-Goog-Resource-ID"] == channel["resourceId"]
    assert sync["X-Goog-Resource-URI"] == channel["resourceUri"]
    assert sync["X-Goog-Message-Number"] == "1" and sync["_body"] == ""
    expires = parsedate_to_datetime(sync["X-Goog-Channel-Expiration"])
    assert abs(expires.timestamp() - expiration / 1000) < 1

    created = service.events().insert(calendarId="primary", body=_event("Ping")).execute()
    service.events().patch(calendarId="primary", eventId=created["id"], body={"summary": "Pong"}).execute()
    service.events().delete(calendarId="primary", eventId=created["id"]).execute()
    got = receiver.wait_for(4)
    assert [h["X-Goog-Resource-State"] for h in got] == ["sync", "exists", "exists", "exists"]
    numbers = [int(h["X-Goog-Message-Number"]) for h in got]
    assert numbers == sorted(numbers) and len(set(numbers)) == 4
    assert sandbox.world.wait_notifications_idle()
    assert len(sandbox.world.delivered_notifications) == 4
    assert all(n["status"] == 200 for n in sandbox.world.delivered_notifications)

    # The same calendar watched again gets the same (stable) resource id; a duplicate channel id is refused.
    again = (
        service.events()
        .watch(calendarId="primary", body={"id": "chan-2", "type": "web_hook", "address": receiver.url})
        .execute()
    )
    assert again["resourceId"] == channel["resourceId"] and "token" not in again
    with pytest.raises(HttpError) as dup:
        service.events().watch(
            calendarId="primary", body={"id": "chan-1", "type": "web_hook", "address": receiver.url}
        ).execute()
    assert dup.value.resp.status == 400
    sync2 = receiver.wait_for(5)[4]
    assert sync2["X-Goog-Channel-ID"] == "chan-2" and "X-Goog-Channel-Token" not in sync2


def test_channels_stop_stops_deliveries(sandbox: SandboxServer, receiver: Receiver) -> None:
    user = sandbox.world.list_users()[0]
    service = calendar_client(sandbox, user)
    channel = (
        service.events()
        .watch(calendarId="primary", body={"id": "chan-stop", "type": "web_hook", "address": receiver.url})
        .execute()
    )
    receiver.wait_for(1)
    assert (
        service.channels().stop(body={"id": "chan-stop", "resourceId": channel["resourceId"]}).execute() == ""
    )
    service.events().insert(calendarId="primary", body=_event("Unheard")).execute()
    assert sandbox.world.wait_notifications_idle()
    time.sleep(0.1)
    assert len(receiver.received) == 1
    with pytest.raises(HttpError) as missing:
        service.channels().stop(body={"id": "chan-stop", "resourceId": channel["resourceId"]}).execute()
    assert missing.value.resp.status == 404


def test_expiration_default_clamp_and_expiry(sandbox: SandboxServer, receiver: Receiver) -> None:
    user = sandbox.world.list_users()[0]
    service = calendar_client(sandbox, user)
    now_ms = time.time() * 1000
    default = (
        service.events()
        .watch(calendarId="primary", body={"id": "c-default", "type": "web_hook", "address": receiver.url})
        .execute()
    )
    assert abs(int(default["expiration"]) - (now_ms + 7 * 86400_000)) < 60_000
    far = (
        service.events()
        .watch(
            calendarId="primary",
            body={
                "id": "c-far",
                "type": "web_hook",
                "address": receiver.url,
                "expiration": str(int(now_ms + 365 * 86400_000)),
            },
        )
        .execute()
    )
    assert int(far["expiration"]) < now_ms + 31 * 86400_000
    receiver.wait_for(2)
    sandbox.world.advance_clock(8 * 86400)  # the default channel is now expired, the clamped one is not
    service = calendar_client(sandbox, sandbox.world.list_users()[0])
    service.events().insert(calendarId="primary", body=_event("After a week")).execute()
    got = receiver.wait_for(3)
    assert sandbox.world.wait_notifications_idle()
    assert [h["X-Goog-Channel-ID"] for h in got[2:]] == ["c-far"]


def test_calendar_list_watch_and_shared_calendar_watchers(sandbox: SandboxServer, receiver: Receiver) -> None:
    ada, grace = sandbox.world.list_users()[:2]
    ada_cal, grace_cal = calendar_client(sandbox, ada), calendar_client(sandbox, grace)
    ada_cal.calendarList().watch(body={"id": "cl-1", "type": "web_hook", "address": receiver.url}).execute()
    team = next(c for c in sandbox.world.calendar_truth(ada["email"]) if c.startswith("c_"))
    grace_cal.events().watch(
        calendarId=team, body={"id": "team-1", "type": "web_hook", "address": receiver.url}
    ).execute()
    receiver.wait_for(2)
    # Ada creates a calendar (calendarList change) and an event on the shared team calendar (Grace's channel).
    ada_cal.calendars().insert(body={"summary": "Side project"}).execute()
    ada_cal.events().insert(calendarId=team, body=_event("Team thing")).execute()
    got = receiver.wait_for(4)
    states = sorted((h["X-Goog-Channel-ID"], h["X-Goog-Resource-State"]) for h in got)
    assert states == [("cl-1", "exists"), ("cl-1", "sync"), ("team-1", "exists"), ("team-1", "sync")]


def test_drop_rate_one_drops_everything(sandbox: SandboxServer, receiver: Receiver) -> None:
    user = sandbox.world.list_users()[0]
    service = calendar_client(sandbox, user)
    resp = requests.post(sandbox.base_url + "/sandbox/notifications", json={"drop_rate": 1.0}, timeout=5)
    assert resp.json() == {"drop_rate": 1.0}
    service.events().watch(
        calendarId="primary", body={"id": "lossy", "type": "web_hook", "address": receiver.url}
    ).execute()
    service.events().insert(calendarId="primary", body=_event("Lost")).execute()
    assert sandbox.world.wait_notifications_idle()
    time.sleep(0.1)
    assert receiver.received == []
    assert sandbox.world.dropped_notifications == 2 and sandbox.world.delivered_notifications == []
    log = requests.get(sandbox.base_url + "/sandbox/notifications", timeout=5).json()
    assert log == {"delivered": [], "dropped": 2}


def test_unreachable_address_is_recorded_not_fatal(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    service = calendar_client(sandbox, user)
    service.events().watch(
        calendarId="primary", body={"id": "dead", "type": "web_hook", "address": "http://127.0.0.1:9/hook"}
    ).execute()
    assert sandbox.world.wait_notifications_idle(timeout=10)
    [record] = sandbox.world.delivered_notifications
    assert record["status"] is None and record["error"]
    # The API keeps working.
    assert service.events().list(calendarId="primary", maxResults=1).execute()["items"]
    json.dumps(sandbox.world.delivered_notifications)  # serialisable for GET /sandbox/notifications
