"""Calendar v3 emulation, driven by the real google-api-python-client."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from googleapiclient.errors import HttpError

from sunny_pipelines.sandbox.server import SandboxServer
from sunny_pipelines_tests.google_clients import calendar_client
from sunny_pipelines_tests.sandbox.helpers import list_all


def _error(exc: HttpError) -> dict[str, Any]:
    return json.loads(exc.content)["error"]


def _when(days: int, hour: int = 10, minutes: int = 0) -> dict[str, str]:
    base = datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0) + timedelta(days=days)
    return {
        "dateTime": (base + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z"),
        "timeZone": "UTC",
    }


def _event(summary: str, days: int = 3, **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "start": _when(days), "end": _when(days, minutes=45), **extra}


def test_calendar_list_pages_and_shapes(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    service = calendar_client(sandbox, user)
    first = service.calendarList().list(maxResults=1).execute()
    assert len(first["items"]) == 1 and "nextPageToken" in first and "nextSyncToken" not in first
    items = list(first["items"])
    request = service.calendarList().list_next(service.calendarList().list(maxResults=1), first)
    while request is not None:
        page = request.execute()
        items += page["items"]
        request = service.calendarList().list_next(request, page)
    assert "nextSyncToken" in page
    by_id = {i["id"]: i for i in items}
    assert set(by_id) == set(sandbox.world.calendar_truth(user["email"]))
    primary = by_id[user["email"]]
    assert primary["primary"] is True and primary["accessRole"] == "owner"
    assert primary["timeZone"] == "Europe/London" and primary["kind"] == "calendar#calendarListEntry"
    roles = sorted(i["accessRole"] for i in items)
    assert roles == ["owner", "reader", "writer"]  # primary, holidays (read-only), team
    assert all(i["etag"].startswith('"') and i["selected"] for i in items)
    assert service.settings().get(setting="timezone").execute()["value"] == "Europe/London"


def test_full_list_with_pagination_equals_truth(sandbox: SandboxServer) -> None:
    for user in sandbox.world.list_users():
        service = calendar_client(sandbox, user)
        truth = sandbox.world.calendar_truth(user["email"])
        for calendar_id, expected in truth.items():
            items, pages = list_all(service, calendarId=calendar_id, singleEvents=True, maxResults=7)
            assert items == expected
            assert all("nextSyncToken" not in p and "nextPageToken" in p for p in pages[:-1])
            assert "nextSyncToken" in pages[-1] and "nextPageToken" not in pages[-1]
            assert pages[0]["kind"] == "calendar#events" and pages[0]["timeZone"]
            if len(expected) > 7:
                assert len(pages) > 1


def test_seeded_world_is_realistic(sandbox: SandboxServer) -> None:
    everything = [
        e
        for u in sandbox.world.list_users()
        for items in sandbox.world.calendar_truth(u["email"]).values()
        for e in items
    ]
    text = json.dumps(everything)
    assert "https://meet.google.com/" in text and '"hangoutsMeet"' in text
    assert "https://us02web.zoom.us/j/" in text
    assert "https://teams.microsoft.com/l/meetup-join/" in text
    assert any("date" in e["start"] for e in everything)  # all-day events
    assert any("recurringEventId" in e for e in everything)
    assert any(e["summary"].endswith("(moved)") for e in everything)  # modified instance
    emails = {a["email"] for e in everything for a in e.get("attendees", [])}
    assert any(m.endswith("@example.com") for m in emails) and any(
        not m.endswith("@example.com") for m in emails
    )
    organizers = {e["organizer"].get("self", False) for e in everything}
    assert organizers == {True, False}
    for e in everything:
        assert e["updated"].endswith("Z") and len(e["updated"]) == 24
        assert e["status"] == "confirmed" and e["eventType"] == "default"


def test_same_seed_same_world() -> None:
    a = SandboxServer(port=0, users=2, events_per_user=6, seed=5)
    b = SandboxServer(port=0, users=2, events_per_user=6, seed=5)
    try:
        strip = {"etag", "created", "updated"}

        def shape(sandbox: SandboxServer) -> list[Any]:
            truth = sandbox.world.calendar_truth(sandbox.world.list_users()[1]["email"])
            return [
                [{k: v for k, v in e.items() if k not in strip} for e in items] for items in truth.values()
            ]

        assert shape(a) == shape(b)
        assert a.world.list_users()[0]["refresh_token"] == b.world.list_users()[0]["refresh_token"]
    finally:
        a.stop()
        b.stop()


def test_insert_patch_delete_then_incremental_sync(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    service = calendar_client(sandbox, user)
    items, pages = list_all(service, calendarId="primary", singleEvents=True)
    token = pages[-1]["nextSyncToken"]
    single = [e for e in items if "recurringEventId" not in e]
    to_patch, to_delete = single[0], single[1]

    created = service.events().insert(calendarId="primary", body=_event("Board prep")).execute()
    patched = (
        service.events()
        .patch(calendarId="primary", eventId=to_patch["id"], body={"summary": "Renamed"})
        .execute()
    )
    assert patched["summary"] == "Renamed" and patched["etag"] != to_patch["etag"]
    assert service.events().delete(calendarId="primary", eventId=to_delete["id"]).execute() == ""

    changes, pages = list_all(service, calendarId="primary", singleEvents=True, syncToken=token)
    by_id = {e["id"]: e for e in changes}
    assert set(by_id) == {created["id"], to_patch["id"], to_delete["id"]}
    assert by_id[created["id"]] == created
    assert by_id[to_patch["id"]]["summary"] == "Renamed"
    assert by_id[to_delete["id"]] == {
        "kind": "calendar#event",
        "etag": by_id[to_delete["id"]]["etag"],
        "id": to_delete["id"],
        "status": "cancelled",
    }
    # Nothing changed since: the next incremental list is empty, and the truth matches a full list.
    again, pages = list_all(
        service, calendarId="primary", singleEvents=True, syncToken=pages[-1]["nextSyncToken"]
    )
    assert again == [] and pages[-1]["nextSyncToken"]
    full, _ = list_all(service, calendarId="primary", singleEvents=True)
    assert full == sandbox.world.calendar_truth(user["email"])[user["email"]]
    assert to_delete["id"] not in {e["id"] for e in full}


def test_incremental_paging_is_consistent_under_concurrent_changes(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    service = calendar_client(sandbox, user)
    first = service.events().list(calendarId="primary", singleEvents=True, maxResults=5).execute()
    # A change between two pages is not lost: it appears in the next incremental sync.
    created = service.events().insert(calendarId="primary", body=_event("Between pages")).execute()
    request = service.events().list_next(
        service.events().list(calendarId="primary", singleEvents=True), first
    )
    items = list(first["items"])
    while request is not None:
        page = request.execute()
        items += page["items"]
        request = service.events().list_next(request, page)
    assert created["id"] not in {e["id"] for e in items}
    changes, _ = list_all(service, calendarId="primary", singleEvents=True, syncToken=page["nextSyncToken"])
    assert [e["id"] for e in changes] == [created["id"]]


def test_get_deleted_and_unknown_events(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    service = calendar_client(sandbox, user)
    created = service.events().insert(calendarId="primary", body=_event("Short-lived")).execute()
    service.events().delete(calendarId="primary", eventId=created["id"]).execute()
    assert (
        service.events().get(calendarId="primary", eventId=created["id"]).execute()["status"] == "cancelled"
    )
    with pytest.raises(HttpError) as gone:
        service.events().delete(calendarId="primary", eventId=created["id"]).execute()
    assert gone.value.resp.status == 410 and _error(gone.value)["errors"][0]["reason"] == "deleted"
    with pytest.raises(HttpError) as missing:
        service.events().get(calendarId="primary", eventId="doesnotexist0").execute()
    assert missing.value.resp.status == 404 and _error(missing.value)["errors"][0]["reason"] == "notFound"
    with pytest.raises(HttpError) as other:
        service.events().list(calendarId="someone.else@example.com").execute()
    assert other.value.resp.status == 404


def test_read_only_calendar_refuses_writes(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    service = calendar_client(sandbox, user)
    holidays = next(c for c in sandbox.world.calendar_truth(user["email"]) if "#holiday@" in c)
    with pytest.raises(HttpError) as denied:
        service.events().insert(calendarId=holidays, body=_event("Nope")).execute()
    assert denied.value.resp.status == 403


def test_insert_validation_and_meet_creation(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    service = calendar_client(sandbox, user)
    with pytest.raises(HttpError) as bad:
        service.events().insert(calendarId="primary", body={"summary": "no times"}).execute()
    assert bad.value.resp.status == 400
    body = _event(
        "Kick-off",
        conferenceData={
            "createRequest": {"requestId": "req-1", "conferenceSolutionKey": {"type": "hangoutsMeet"}}
        },
        attendees=[{"email": "partner@globex.example.net"}],
    )
    ignored = service.events().insert(calendarId="primary", body=body).execute()
    assert "conferenceData" not in ignored and "hangoutLink" not in ignored  # conferenceDataVersion=0
    event = service.events().insert(calendarId="primary", body=body, conferenceDataVersion=1).execute()
    assert len(event["id"]) == 26 and set(event["id"]) <= set("0123456789abcdefghijklmnopqrstuv")
    assert event["hangoutLink"].startswith("https://meet.google.com/")
    code = event["hangoutLink"].rsplit("/", 1)[1]
    assert [len(p) for p in code.split("-")] == [3, 4, 3]
    data = event["conferenceData"]
    assert data["conferenceSolution"]["key"]["type"] == "hangoutsMeet" and data["conferenceId"] == code
    assert data["entryPoints"][0] == {
        "entryPointType": "video",
        "uri": event["hangoutLink"],
        "label": f"meet.google.com/{code}",
    }
    assert data["createRequest"]["status"]["statusCode"] == "success"
    assert event["organizer"] == {"email": user["email"], "displayName": user["name"], "self": True}
    assert event["attendees"] == [{"email": "partner@globex.example.net", "responseStatus": "needsAction"}]
    assert event["created"].endswith("Z") and event["iCalUID"] == event["id"] + "@google.com"


def test_recurring_series_expansion_exceptions_and_incremental(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    service = calendar_client(sandbox, user)
    _, pages = list_all(service, calendarId="primary", singleEvents=True)
    token = pages[-1]["nextSyncToken"]
    start = datetime(2030, 1, 7, 9, 0)  # a Monday, in London winter time (UTC+0)
    series = (
        service.events()
        .insert(
            calendarId="primary",
            body={
                "summary": "Weekly",
                "start": {"dateTime": start.isoformat(), "timeZone": "Europe/London"},
                "end": {"dateTime": (start + timedelta(minutes=30)).isoformat(), "timeZone": "Europe/London"},
                "recurrence": [
                    "RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=5",
                    "EXDATE;TZID=Europe/London:20300114T090000",
                ],
            },
        )
        .execute()
    )
    sid = series["id"]
    ids = [f"{sid}_203001{d:02d}T090000Z" for d in (7, 14, 21, 28)] + [f"{sid}_20300204T090000Z"]
    instances, _ = list_all(service, calendarId="primary", singleEvents=True, timeMin="2030-01-01T00:00:00Z")
    assert [e["id"] for e in instances] == [ids[0], ids[2], ids[3], ids[4]]  # the EXDATE one is absent
    first = instances[0]
    assert first["recurringEventId"] == sid and "recurrence" not in first
    assert first["originalStartTime"] == {"dateTime": "2030-01-07T09:00:00Z", "timeZone": "Europe/London"}
    assert first["start"] == first["originalStartTime"] and first["summary"] == "Weekly"

    moved = (
        service.events()
        .patch(
            calendarId="primary",
            eventId=ids[2],
            body={
                "summary": "Weekly (moved)",
                "start": {"dateTime": "2030-01-21T11:00:00Z"},
                "end": {"dateTime": "2030-01-21T11:30:00Z"},
            },
        )
        .execute()
    )
    assert (
        moved["recurringEventId"] == sid and moved["originalStartTime"]["dateTime"] == "2030-01-21T09:00:00Z"
    )
    service.events().delete(calendarId="primary", eventId=ids[3]).execute()

    instances, _ = list_all(
        service, calendarId="primary", singleEvents=True, timeMin="2030-01-01T00:00:00Z", orderBy="startTime"
    )
    assert [(e["id"], e["summary"]) for e in instances] == [
        (ids[0], "Weekly"),
        (ids[2], "Weekly (moved)"),
        (ids[4], "Weekly"),
    ]
    # Not expanded: the master (with its rule) plus the exceptions; Google keeps the cancelled one too.
    raw, _ = list_all(service, calendarId="primary", timeMin="2030-01-01T00:00:00Z")
    assert {e["id"]: e["status"] for e in raw} == {sid: "confirmed", ids[2]: "confirmed", ids[3]: "cancelled"}
    assert next(e for e in raw if e["id"] == sid)["recurrence"][0].startswith("RRULE:")

    changes, pages = list_all(service, calendarId="primary", singleEvents=True, syncToken=token)
    by_id = {e["id"]: e for e in changes}
    assert set(by_id) == set(ids)  # every instance of the new series, including the cancelled ones
    assert by_id[ids[1]]["status"] == by_id[ids[3]]["status"] == "cancelled"
    assert by_id[ids[3]]["recurringEventId"] == sid and "originalStartTime" in by_id[ids[3]]
    token = pages[-1]["nextSyncToken"]

    # A change to the series changes every instance.
    service.events().patch(calendarId="primary", eventId=sid, body={"location": "Room 1"}).execute()
    changes, pages = list_all(service, calendarId="primary", singleEvents=True, syncToken=token)
    assert {e["id"] for e in changes} == set(ids)
    assert next(e for e in changes if e["id"] == ids[0])["location"] == "Room 1"
    # ...and deleting it cancels them all.
    service.events().delete(calendarId="primary", eventId=sid).execute()
    changes, _ = list_all(
        service, calendarId="primary", singleEvents=True, syncToken=pages[-1]["nextSyncToken"]
    )
    assert {e["id"] for e in changes} == set(ids) and {e["status"] for e in changes} == {"cancelled"}
    instances, _ = list_all(service, calendarId="primary", singleEvents=True, timeMin="2030-01-01T00:00:00Z")
    assert instances == []


def test_sync_token_errors(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    service = calendar_client(sandbox, user)
    _, pages = list_all(service, calendarId="primary", singleEvents=True)
    token = pages[-1]["nextSyncToken"]
    with pytest.raises(HttpError) as bad:
        service.events().list(calendarId="primary", syncToken=token, timeMin="2026-01-01T00:00:00Z").execute()
    assert bad.value.resp.status == 400
    for wrong in ("garbage", pages[-1]["nextSyncToken"][:-2]):
        with pytest.raises(HttpError) as gone:
            service.events().list(calendarId="primary", syncToken=wrong).execute()
        assert gone.value.resp.status == 410
    team = next(c for c in sandbox.world.calendar_truth(user["email"]) if c.startswith("c_"))
    with pytest.raises(HttpError) as foreign:  # a token of another calendar
        service.events().list(calendarId=team, syncToken=token).execute()
    assert foreign.value.resp.status == 410

    assert service.events().list(calendarId="primary", syncToken=token).execute()["items"] == []
    sandbox.world.inject_fault("invalidate_sync_tokens", user_email=user["email"])
    with pytest.raises(HttpError) as invalidated:
        service.events().list(calendarId="primary", syncToken=token).execute()
    assert invalidated.value.resp.status == 410
    assert _error(invalidated.value) == {
        "code": 410,
        "message": "Sync token is no longer valid, a full sync is required.",
        "errors": [
            {
                "domain": "calendar",
                "reason": "fullSyncRequired",
                "message": "Sync token is no longer valid, a full sync is required.",
            }
        ],
        "status": "GONE",
    }
    # A new full sync gives a working token again.
    _, pages = list_all(service, calendarId="primary", singleEvents=True)
    assert (
        service.events().list(calendarId="primary", syncToken=pages[-1]["nextSyncToken"]).execute()["items"]
        == []
    )


def test_rate_limit_and_server_errors_are_retried(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    service = calendar_client(sandbox, user)
    sandbox.world.inject_fault("rate_limit", user_email=user["email"], count=2)
    sandbox.world.inject_fault("server_error", user_email=user["email"], count=2)
    sandbox.world.reset_counters()
    request = service.events().list(calendarId="primary", maxResults=3)
    request._sleep = lambda seconds: None  # keep the client's exponential backoff out of the test's time
    assert len(request.execute(num_retries=5)["items"]) == 3
    assert sandbox.world.request_count(user["email"]) == 5  # 429, 429, 503, 503, 200

    sandbox.world.inject_fault("rate_limit", count=1)
    with pytest.raises(HttpError) as limited:
        service.events().list(calendarId="primary", maxResults=3).execute()
    assert limited.value.resp.status == 429
    error = _error(limited.value)
    assert error["errors"][0]["reason"] == "rateLimitExceeded" and error["status"] == "RESOURCE_EXHAUSTED"
    sandbox.world.inject_fault("server_error", count=1)
    with pytest.raises(HttpError) as unavailable:
        service.events().list(calendarId="primary", maxResults=3).execute()
    assert (
        unavailable.value.resp.status == 503
        and _error(unavailable.value)["errors"][0]["reason"] == "backendError"
    )
    assert service.events().list(calendarId="primary", maxResults=3).execute()["items"]
    # Faults for another user leave this one alone.
    sandbox.world.inject_fault("server_error", user_email=sandbox.world.list_users()[1]["email"])
    assert service.events().list(calendarId="primary", maxResults=1).execute()["items"]


def test_latency_fault(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    service = calendar_client(sandbox, user)
    requests.post(
        sandbox.base_url + "/sandbox/faults", json={"kind": "latency", "latency_ms": 300}, timeout=5
    )
    began = time.monotonic()
    service.calendarList().list().execute()
    assert time.monotonic() - began >= 0.3
    began = time.monotonic()
    service.calendarList().list().execute()
    assert time.monotonic() - began < 0.3


def test_invitations_reach_attendees_calendars(sandbox: SandboxServer) -> None:
    ada, grace = sandbox.world.list_users()[:2]
    ada_cal, grace_cal = calendar_client(sandbox, ada), calendar_client(sandbox, grace)
    _, pages = list_all(grace_cal, calendarId="primary", singleEvents=True)
    token = pages[-1]["nextSyncToken"]
    event = (
        ada_cal.events()
        .insert(calendarId="primary", body=_event("Pairing", attendees=[{"email": grace["email"]}]))
        .execute()
    )
    copy = grace_cal.events().get(calendarId="primary", eventId=event["id"]).execute()
    assert copy["organizer"] == {"email": ada["email"], "displayName": ada["name"]}
    assert copy["attendees"] == [
        {"email": grace["email"], "displayName": grace["name"], "responseStatus": "needsAction", "self": True}
    ]
    ada_cal.events().delete(calendarId="primary", eventId=event["id"]).execute()
    changes, _ = list_all(grace_cal, calendarId="primary", singleEvents=True, syncToken=token)
    assert [(e["id"], e["status"]) for e in changes] == [(event["id"], "cancelled")]


def test_update_replaces_and_patch_keeps_conference_data(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    service = calendar_client(sandbox, user)
    create = {"createRequest": {"requestId": "r-9", "conferenceSolutionKey": {"type": "hangoutsMeet"}}}
    event = (
        service.events()
        .insert(
            calendarId="primary",
            body=_event("Sync", location="Room 1", conferenceData=create),
            conferenceDataVersion=1,
        )
        .execute()
    )
    link = event["hangoutLink"]
    patched = (
        service.events()
        .patch(calendarId="primary", eventId=event["id"], body={"summary": "Sync 2"})
        .execute()
    )
    assert patched["hangoutLink"] == link and patched["location"] == "Room 1" and patched["sequence"] == 0
    moved = (
        service.events()
        .patch(
            calendarId="primary", eventId=event["id"], body={"start": _when(4), "end": _when(4, minutes=30)}
        )
        .execute()
    )
    assert moved["sequence"] == 1 and moved["start"] == _when(4)
    # update (PUT) replaces every writable field; without conferenceDataVersion the meeting link is kept.
    replaced = (
        service.events()
        .update(
            calendarId="primary",
            eventId=event["id"],
            body={"summary": "Only this", "start": _when(5), "end": _when(5, minutes=30)},
        )
        .execute()
    )
    assert replaced["summary"] == "Only this" and "location" not in replaced
    assert replaced["hangoutLink"] == link and replaced["created"] == event["created"]
    removed = (
        service.events()
        .patch(
            calendarId="primary", eventId=event["id"], body={"conferenceData": None}, conferenceDataVersion=1
        )
        .execute()
    )
    assert "hangoutLink" not in removed and "conferenceData" not in removed


def test_instances_endpoint(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    service = calendar_client(sandbox, user)
    series = (
        service.events()
        .insert(
            calendarId="primary",
            body={
                "summary": "Daily",
                "start": {"date": "2031-03-02"},
                "end": {"date": "2031-03-03"},
                "recurrence": ["RRULE:FREQ=DAILY;COUNT=4"],
            },
        )
        .execute()
    )
    first = service.events().instances(calendarId="primary", eventId=series["id"], maxResults=3).execute()
    assert [e["id"] for e in first["items"]] == [f"{series['id']}_2031030{d}" for d in (2, 3, 4)]
    rest = (
        service.events()
        .instances_next(
            service.events().instances(calendarId="primary", eventId=series["id"], maxResults=3), first
        )
        .execute()
    )
    assert [e["start"] for e in rest["items"]] == [{"date": "2031-03-05"}]
    assert rest["items"][0]["originalStartTime"] == {"date": "2031-03-05"}


def test_concurrent_clients_keep_the_world_consistent(sandbox: SandboxServer) -> None:
    users = sandbox.world.list_users()

    def work(user: dict[str, Any]) -> None:
        service = calendar_client(sandbox, user)
        for n in range(5):
            event = service.events().insert(calendarId="primary", body=_event(f"Parallel {n}")).execute()
            if n % 2:
                service.events().delete(calendarId="primary", eventId=event["id"]).execute()
            list_all(service, calendarId="primary", singleEvents=True, maxResults=50)

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(work, users * 2))
    for user in users:
        items, _ = list_all(calendar_client(sandbox, user), calendarId="primary", singleEvents=True)
        assert items == sandbox.world.calendar_truth(user["email"])[user["email"]]
        assert sum(e["summary"].startswith("Parallel") for e in items) == 6  # 2 workers x 3 kept


def test_calendar_list_incremental_sync(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    service = calendar_client(sandbox, user)
    token = service.calendarList().list().execute()["nextSyncToken"]
    created = (
        service.calendars().insert(body={"summary": "Side project", "timeZone": "Europe/Paris"}).execute()
    )
    assert created["id"].endswith("@group.calendar.google.com")
    changes = service.calendarList().list(syncToken=token).execute()
    assert [(i["id"], i["accessRole"]) for i in changes["items"]] == [(created["id"], "owner")]
    service.calendarList().delete(calendarId=created["id"]).execute()
    gone = service.calendarList().list(syncToken=changes["nextSyncToken"]).execute()["items"]
    assert gone == [
        {"kind": "calendar#calendarListEntry", "etag": gone[0]["etag"], "id": created["id"], "deleted": True}
    ]
    sandbox.world.inject_fault("invalidate_sync_tokens", user_email=user["email"])
    with pytest.raises(HttpError) as invalid:
        service.calendarList().list(syncToken=changes["nextSyncToken"]).execute()
    assert invalid.value.resp.status == 410
