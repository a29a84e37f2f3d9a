"""End to end, every part real: PostgreSQL, the sandbox, the webhook receiver over HTTP and a
Dagster daemon with its sensors. A change made through the Google client reaches
`calendar_events` by the push path alone (sandbox → receiver → inbox → sensor → run)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import select

from sunny_pipelines.calendar.channels import ensure_calendar_channels
from sunny_pipelines.calendar.sync import sync_user_calendars
from sunny_pipelines.db.models import CalendarEvent, WatchChannel, WebhookInbox
from sunny_pipelines.partitions import TRIGGER_TAG
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines_tests.calendar.helpers import user_calendar_client
from sunny_pipelines_tests.stack import app_env, dagster_command, dagster_home, running, wait_for


def test_event_inserted_in_google_reaches_calendar_events_by_push_alone(
    tmp_path, database, cipher, sandbox, connected_users, receiver
):
    ada = connected_users[0]
    google = GoogleResource(
        database=database, cipher=cipher, sandbox_url=sandbox.base_url, webhook_base_url=receiver
    )
    # The user's first sync and channels, as their first run does.
    sync_user_calendars(google.session(ada["id"]), database, ada["id"])
    ensure_calendar_channels(google.session(ada["id"]), database, ada["id"], receiver)
    with database.begin() as conn:
        assert conn.execute(select(WatchChannel.id).where(WatchChannel.user_id == ada["id"])).first()

    home = dagster_home(tmp_path / "dagster_home", [u["id"] for u in connected_users])
    env = app_env(
        home=home,
        database_url=database.url,
        token_key=cipher.key,
        sandbox_url=sandbox.base_url,
        webhook_url=receiver,
    )
    daemon = dagster_command("dagster-daemon", "run", "-w", "workspace.yaml")
    with running(daemon, env, tmp_path / "daemon.log"):
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
        created = (
            user_calendar_client(sandbox, ada)
            .events()
            .insert(
                calendarId="primary",
                body={
                    "summary": "Pushed through",
                    "location": "https://meet.google.com/abc-defg-hij",
                    "start": {"dateTime": start.isoformat()},
                    "end": {"dateTime": (start + timedelta(minutes=45)).isoformat()},
                },
            )
            .execute()
        )

        def stored() -> object:
            with database.begin() as conn:
                return conn.execute(
                    select(CalendarEvent.meeting_url).where(
                        CalendarEvent.user_id == ada["id"], CalendarEvent.event_id == created["id"]
                    )
                ).first()

        try:
            wait_for(stored, timeout=120, interval=0.2)
        except TimeoutError:
            pytest.fail("event never arrived; daemon log:\n" + (tmp_path / "daemon.log").read_text()[-5000:])

    assert stored()[0] == "https://meet.google.com/abc-defg-hij"
    with database.begin() as conn:
        rows = conn.execute(select(WebhookInbox.status, WebhookInbox.claimed_by)).all()
    assert rows and all(status == "done" for status, _ in rows)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = [instance.get_run_by_id(run_id) for _, run_id in rows]
        assert {run.tags.get(TRIGGER_TAG) for run in runs} == {"inbox"}
        assert all(run.tags.get("dagster/sensor_name") == "webhook_inbox_sensor" for run in runs)
