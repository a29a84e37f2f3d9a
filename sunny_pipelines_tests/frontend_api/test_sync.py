""" "Sync now" through the push path and the sync status, for the frontend: service key, inbox
rows the inbox sensor turns into a run for the user, the user's new data, and the status the
frontend shows (never a token). Also: the OpenAPI document, and no Dagster in the service."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import select, update

from sunny_pipelines import calendar, drive, gmail
from sunny_pipelines.db.models import CalendarEvent, GoogleConnection, WebhookInbox
from sunny_pipelines.definitions import build_defs
from sunny_pipelines.frontend_api import create_app
from sunny_pipelines.frontend_api.sync import SYNC_SOURCES
from sunny_pipelines.partitions import TRIGGER_TAG
from sunny_pipelines.vocabulary import Trigger
from sunny_pipelines_tests.frontend_api.conftest import FRONTEND_KEY, auth
from sunny_pipelines_tests.google_clients import calendar_client
from sunny_pipelines_tests.inbox.helpers import inbox_row
from sunny_pipelines_tests.runs import evaluate_sensor, execute, range_of, run_range


def test_frontend_endpoints_need_the_service_key(api, settings, connected_users):
    user_id = connected_users[0]["id"]
    for path, method in ((f"/users/{user_id}/sync-status", "get"), (f"/users/{user_id}/sync", "post")):
        for headers in (
            {},
            auth("wrong-key"),
            {"X-Sunny-Service-Key": "wrong-key"},
            {"Authorization": FRONTEND_KEY},
        ):
            answer = getattr(api, method)(path, headers=headers)
            assert answer.status_code == 401, (path, headers)
            assert answer.json()["detail"]["error"] == "unauthorized"
            assert answer.headers["www-authenticate"] == "Bearer"
    assert api.get(f"/users/{user_id}/sync-status", headers=auth()).status_code == 200
    assert (
        api.get(f"/users/{user_id}/sync-status", headers={"X-Sunny-Service-Key": FRONTEND_KEY}).status_code
        == 200
    )
    # No key configured: nothing is accepted, not even an empty one.
    from dataclasses import replace

    from starlette.testclient import TestClient

    with TestClient(create_app(replace(settings, frontend_api_key=""))) as unkeyed:
        assert unkeyed.get(f"/users/{user_id}/sync-status", headers=auth("")).status_code == 401
        assert (
            unkeyed.get(f"/users/{user_id}/sync-status", headers={"X-Sunny-Service-Key": ""}).status_code
            == 401
        )


def test_sync_now_takes_the_push_path_to_the_users_data(api, sandbox, database, resources, connected_users):
    user, other = connected_users[0], connected_users[1]
    defs = build_defs(resources)
    keys = [u["id"] for u in connected_users]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", keys)
        assert run_range(defs, instance, "calendar_sync", keys, Trigger.FIRST_SYNC).success
        cursor = evaluate_sensor(defs, "webhook_inbox_sensor", instance, resources).cursor

        # The user adds an event at Google; no channel tells us (no receiver here).
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
        created = (
            calendar_client(sandbox, user)
            .events()
            .insert(
                calendarId="primary",
                body={
                    "summary": "Synced on demand",
                    "start": {"dateTime": start.isoformat()},
                    "end": {"dateTime": (start + timedelta(hours=1)).isoformat()},
                },
            )
            .execute()
        )

        answer = api.post(f"/users/{user['id']}/sync", json={"services": ["calendar"]}, headers=auth())
        assert answer.status_code == 202, answer.text
        [requested] = answer.json()["requests"]
        assert (requested["service"], requested["queued"]) == ("calendar", True)
        # A double click waits with the first request.
        again = api.post(f"/users/{user['id']}/sync", json={"services": ["calendar"]}, headers=auth()).json()
        assert again["requests"] == [{**requested, "queued": False}]
        row = inbox_row(database, requested["inbox_id"])
        assert (row.source, row.user_id, row.status, row.channel_id) == (
            "google_calendar",
            user["id"],
            "pending",
            None,
        )
        assert row.payload["requested_by"] == "frontend" and row.dedup_key.startswith(
            f"frontend:{user['id']}:"
        )

        # The inbox sensor, unchanged, turns it into an incremental run for that user only.
        tick = evaluate_sensor(defs, "webhook_inbox_sensor", instance, resources, cursor=cursor)
        [request] = tick.run_requests
        assert (request.job_name, request.tags[TRIGGER_TAG]) == ("calendar_sync", "inbox")
        assert range_of(request) == (user["id"], user["id"])
        result = execute(defs, instance, request)
        assert result.success
        assert [m.partition for m in result.asset_materializations_for_node("calendar_events")] == [
            user["id"]
        ]

    assert inbox_row(database, requested["inbox_id"]).status == "done"
    with database.begin() as conn:
        event = conn.execute(
            select(CalendarEvent.summary, CalendarEvent.user_id).where(
                CalendarEvent.event_id == created["id"]
            )
        ).one()
    assert tuple(event) == ("Synced on demand", user["id"])

    # Once the run has claimed the request, a new click is a new request.
    fresh = api.post(f"/users/{user['id']}/sync", json={"services": ["calendar"]}, headers=auth()).json()
    assert fresh["requests"][0]["queued"] and fresh["requests"][0]["inbox_id"] != requested["inbox_id"]
    # No services named: every Google service; each row from that service's own source.
    everything = api.post(f"/users/{other['id']}/sync", headers=auth()).json()["requests"]
    assert [r["service"] for r in everything] == ["calendar", "drive", "gmail"]
    with database.begin() as conn:
        sources = conn.execute(
            select(WebhookInbox.source).where(WebhookInbox.user_id == other["id"]).order_by(WebhookInbox.id)
        ).scalars()
        assert list(sources) == ["google_calendar", "google_drive", "google_gmail"]


def test_sync_now_refuses_unknown_users_and_unusable_grants(api, database, connected_users):
    assert api.post("/users/nobody/sync", headers=auth()).json()["detail"]["error"] == "unknown_user"
    assert api.post("/users/nobody/sync", headers=auth()).status_code == 404
    user_id = connected_users[0]["id"]
    with database.begin() as conn:
        conn.execute(
            update(GoogleConnection).where(GoogleConnection.user_id == user_id).values(status="needs_reauth")
        )
    answer = api.post(f"/users/{user_id}/sync", headers=auth())
    assert (answer.status_code, answer.json()["detail"]["error"]) == (409, "grant_not_usable")
    assert "needs_reauth" in answer.json()["detail"]["message"]
    bad = api.post(f"/users/{user_id}/sync", json={"services": ["attendee"]}, headers=auth())
    assert bad.status_code == 422
    with database.begin() as conn:
        assert conn.execute(select(WebhookInbox.id)).all() == []


def test_sync_status_per_service_and_grant_without_tokens(api, database, resources, connected_users):
    user = connected_users[0]
    defs = build_defs(resources)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", [user["id"]])
        assert run_range(defs, instance, "calendar_sync", [user["id"]], Trigger.FIRST_SYNC).success
    with database.begin() as conn:
        conn.execute(update(GoogleConnection).where(GoogleConnection.user_id == user["id"]).values(
            last_validated_at=datetime(2026, 11, 30, 5, tzinfo=UTC)
        ))  # fmt: skip
    api.post(f"/users/{user['id']}/sync", json={"services": ["drive"]}, headers=auth())

    answer = api.get(f"/users/{user['id']}/sync-status", headers=auth())
    assert answer.status_code == 200
    status = answer.json()
    assert (status["user_id"], status["user_status"]) == (user["id"], "active")
    grant = status["grant"]
    assert (grant["status"], grant["google_email"], grant["last_error"]) == ("active", user["email"], None)
    assert grant["last_validated_at"].startswith("2026-11-30T05:00:00")
    services = {s["service"]: s for s in status["services"]}
    assert list(services)[:3] == ["calendar", "drive", "gmail"]
    synced = services["calendar"]
    assert synced["last_synced_at"] is not None and synced["interval_seconds"] == 30 * 60
    assert synced["last_change_count"] > 0 and synced["consecutive_failures"] == 0
    assert synced["last_error"] is None and synced["pending_notifications"] == 0
    assert services["drive"]["pending_notifications"] == 1
    assert services["gmail"] == {
        "service": "gmail",
        "last_synced_at": None,
        "interval_seconds": None,
        "last_change_count": None,
        "last_error": None,
        "consecutive_failures": 0,
        "pending_notifications": 0,
    }
    with database.begin() as conn:
        stored = conn.execute(
            select(GoogleConnection.access_token, GoogleConnection.refresh_token).where(
                GoogleConnection.user_id == user["id"]
            )
        ).one()
    for secret in (user["access_token"], user["refresh_token"], *stored):
        assert secret not in answer.text
    assert api.get("/users/nobody/sync-status", headers=auth()).status_code == 404


def test_sync_now_sources_are_the_ones_the_domains_answer():
    for domain in (calendar.domain, drive.domain, gmail.domain):
        assert domain.sync is not None
        assert SYNC_SOURCES[domain.sync.service] in domain.inbox_sources


def test_openapi_document_describes_the_endpoints(api):
    document = api.get("/openapi.json").json()
    paths = document["paths"]
    assert {
        "/oauth/google/start",
        "/oauth/google/callback",
        "/users/{user_id}/sync",
        "/users/{user_id}/sync-status",
    } <= set(paths)
    status = paths["/users/{user_id}/sync-status"]["get"]
    assert status["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "SyncStatusResponse"
    )
    assert {"401", "404"} <= set(status["responses"])
    assert {next(iter(s)) for s in status["security"]} == {"HTTPBearer", "APIKeyHeader"}
    sync_request = document["components"]["schemas"]["SyncableService"]
    assert sync_request["enum"] == ["calendar", "drive", "gmail"]
    assert "security" not in paths["/oauth/google/start"]["get"]  # a browser endpoint: state protects it
    assert api.get("/docs").status_code == 200


IMPORT_PROBE = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    import sunny_pipelines.frontend_api as package
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
    print(json.dumps({
        "dagster": sorted(m for m in sys.modules if m.startswith("dagster")),
        "sunny": sorted(m for m in sys.modules if m.startswith("sunny_pipelines.")),
    }))
    """
)


@pytest.mark.timeout(120)
def test_the_service_imports_no_dagster_and_no_domain():
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["dagster"] == []
    allowed = (
        "sunny_pipelines.frontend_api",
        "sunny_pipelines.db",
        "sunny_pipelines.vocabulary",
        "sunny_pipelines.webhooks",
    )
    assert [m for m in result["sunny"] if not m.startswith(allowed)] == []


def test_concurrent_clicks_make_one_request(api, database, connected_users):
    user_id = connected_users[2]["id"]
    barrier = threading.Barrier(6)

    def click() -> list[int]:
        barrier.wait()
        answer = api.post(f"/users/{user_id}/sync", json={"services": ["gmail", "drive"]}, headers=auth())
        assert answer.status_code == 202
        return [r["inbox_id"] for r in answer.json()["requests"]]

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: click(), range(6)))
    assert len({tuple(a) for a in answers}) == 1
    with database.begin() as conn:
        rows = conn.execute(select(WebhookInbox.source).where(WebhookInbox.user_id == user_id)).scalars()
        assert sorted(rows) == ["google_drive", "google_gmail"]
