"""Inbox rows → sensor → batched runs → rows done/failed, on PostgreSQL and the sandbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
from sqlalchemy import select, update

from sunny_pipelines.calendar.sync import sync_user_calendars
from sunny_pipelines.db.models import CalendarEvent, WebhookInbox
from sunny_pipelines.definitions import build_defs
from sunny_pipelines.inbox import rows as inbox_rows
from sunny_pipelines.inbox.rows import MAX_ATTEMPTS
from sunny_pipelines.inbox.sensors import InboxCursor
from sunny_pipelines.partitions import TRIGGER_TAG
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines_tests.calendar.helpers import stored_rows, truth_rows
from sunny_pipelines_tests.google_clients import calendar_client
from sunny_pipelines_tests.inbox.helpers import notify
from sunny_pipelines_tests.runs import evaluate_sensor, execute


def all_finished(run_ids):
    return set(run_ids)


def inbox_statuses(database) -> dict[int, tuple[str, int]]:
    with database.begin() as conn:
        rows = conn.execute(select(WebhookInbox.id, WebhookInbox.status, WebhookInbox.attempts))
        return {row.id: (row.status, row.attempts) for row in rows}


def first_sync(google, database, users):
    for user in users:
        sync_user_calendars(google.session(user["id"]), database, user["id"])


def insert_event(sandbox, user, summary: str) -> dict:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    body = {
        "summary": summary,
        "start": {"dateTime": start.isoformat()},
        "end": {"dateTime": (start + timedelta(minutes=30)).isoformat()},
    }
    return calendar_client(sandbox, user).events().insert(calendarId="primary", body=body).execute()


def test_notifications_become_one_batched_run_and_rows_end_done(
    resources, google, database, sandbox, connected_users
):
    defs = build_defs(resources)
    first_sync(google, database, connected_users)
    ada, alan, _ = connected_users
    created = insert_event(sandbox, ada, "Pushed meeting")
    ids = [notify(database, ada["id"]), notify(database, alan["id"]), notify(database, ada["id"])]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", [u["id"] for u in connected_users])
        tick = evaluate_sensor(defs, "webhook_inbox_sensor", instance, resources)
        [request] = tick.run_requests
        assert request.tags[TRIGGER_TAG] == "inbox"
        assert f":{max(ids)}:" in request.run_key
        assert InboxCursor.parse(tick.cursor).last_id == max(ids)
        # The sensor itself changed nothing.
        assert set(inbox_statuses(database).values()) == {("pending", 0)}

        result = execute(defs, instance, request)
        assert result.success
        assert instance.get_materialized_partitions(dg.AssetKey("calendar_events")) == {ada["id"], alan["id"]}
        # The third user had no notification: skipped, not synced.
        assert all(status == ("done", 1) for status in inbox_statuses(database).values())
        assert evaluate_sensor(
            defs, "webhook_inbox_sensor", instance, resources, cursor=tick.cursor
        ).skip_message
    with database.begin() as conn:
        assert conn.execute(
            select(CalendarEvent.summary).where(CalendarEvent.event_id == created["id"])
        ).scalar()
    assert stored_rows(database, ada["id"]) == truth_rows(sandbox, ada)


def test_failing_user_rows_end_failed_while_others_end_done_then_retry_with_backoff(
    resources, google, database, sandbox, connected_users
):
    # No client retries: the 503s reach the run at once.
    google = GoogleResource(
        database=database, cipher=google.cipher, sandbox_url=sandbox.base_url, num_retries=0
    )
    resources = {**resources, "google": google}
    defs = build_defs(resources)
    first_sync(google, database, connected_users[:2])
    ada, alan, _ = connected_users
    ok_row, bad_row = notify(database, ada["id"]), notify(database, alan["id"])
    sandbox.world.inject_fault("server_error", user_email=alan["email"], count=100)
    resources["google"] = (
        google.model_copy(update={"num_retries": 0}) if hasattr(google, "model_copy") else google
    )
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", [u["id"] for u in connected_users])
        tick = evaluate_sensor(defs, "webhook_inbox_sensor", instance, resources)
        result = execute(defs, instance, tick.run_requests[0])
        assert not result.success
        assert instance.get_materialized_partitions(dg.AssetKey("calendar_events")) == {ada["id"]}
        with database.begin() as conn:
            bad = conn.execute(select(WebhookInbox).where(WebhookInbox.id == bad_row)).one()
        assert inbox_statuses(database)[ok_row] == ("done", 1)
        assert (bad.status, bad.attempts) == ("failed", 1)
        assert "503" in bad.error and bad.next_attempt_at > datetime.now(UTC)

        # Not before its backoff is over…
        later = evaluate_sensor(defs, "webhook_inbox_sensor", instance, resources, cursor=tick.cursor)
        assert not later.run_requests
        # …then once more, under a new run key.
        with database.begin() as conn:
            conn.execute(
                update(WebhookInbox)
                .where(WebhookInbox.id == bad_row)
                .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        sandbox.world.clear_faults()
        retry = evaluate_sensor(defs, "webhook_inbox_sensor", instance, resources, cursor=tick.cursor)
        [request] = retry.run_requests
        assert request.run_key != tick.run_requests[0].run_key
        assert execute(defs, instance, request).success
        assert inbox_statuses(database)[bad_row] == ("done", 2)


def test_rows_give_up_after_max_attempts(database, connected_users):
    row_id = notify(database, connected_users[0]["id"])
    now = datetime.now(UTC)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        with database.begin() as conn:
            [claimed] = inbox_rows.claim(
                conn, connected_users[0]["id"], ["google_calendar"], f"run-{attempt}", now, all_finished
            )
            assert claimed.attempts == attempt
            inbox_rows.mark_failed(conn, [claimed], f"run-{attempt}", "boom", now)
        now += timedelta(hours=1)
    with database.begin() as conn:
        row = conn.execute(select(WebhookInbox).where(WebhookInbox.id == row_id)).one()
        assert (row.status, row.attempts, row.next_attempt_at) == ("failed", MAX_ATTEMPTS, None)
        assert (
            inbox_rows.claim(conn, connected_users[0]["id"], ["google_calendar"], "run-x", now, all_finished)
            == []
        )


def test_rows_of_a_run_killed_midway_are_processed_on_the_next_tick(
    resources, google, database, sandbox, connected_users
):
    defs = build_defs(resources)
    first_sync(google, database, connected_users[:1])
    ada = connected_users[0]
    row_id = notify(database, ada["id"])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", [u["id"] for u in connected_users])
        tick = evaluate_sensor(defs, "webhook_inbox_sensor", instance, resources)
        # The requested run starts, claims the rows, and its process is killed before it finishes.
        killed = instance.create_run_for_job(
            defs.resolve_job_def("calendar_sync"), tags=tick.run_requests[0].tags
        )
        with database.begin() as conn:
            inbox_rows.claim(
                conn, ada["id"], ["google_calendar"], killed.run_id, datetime.now(UTC), all_finished
            )
        # While that run is alive its rows are left to it…
        instance.handle_run_event(
            killed.run_id,
            dg.DagsterEvent(event_type_value="PIPELINE_START", job_name="calendar_sync", message="started"),
        )
        assert not evaluate_sensor(
            defs, "webhook_inbox_sensor", instance, resources, cursor=tick.cursor
        ).run_requests
        # …and once Dagster knows it died, the next tick requests them again.
        instance.report_run_failed(instance.get_run_by_id(killed.run_id), "worker process killed")
        again = evaluate_sensor(defs, "webhook_inbox_sensor", instance, resources, cursor=tick.cursor)
        [request] = again.run_requests
        assert execute(defs, instance, request).success
    assert inbox_statuses(database)[row_id] == ("done", 2)


def test_rows_naming_an_unknown_user_add_the_partition(resources, database, connected_users):
    defs = build_defs(resources)
    notify(database, connected_users[2]["id"])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", [connected_users[0]["id"]])
        tick = evaluate_sensor(defs, "webhook_inbox_sensor", instance, resources)
        [add] = tick.dynamic_partitions_requests
        assert list(add.partition_keys) == [connected_users[2]["id"]]
        assert len(tick.run_requests) == 1
