"""Sync optimization against PostgreSQL: history appended with each sync outcome, the due rule
(back-off from the last failure), the `sync_intervals` asset end to end (history and channels
in, intervals, pruning and metadata out), and the calendar schedule syncing only the users
whose optimized interval has elapsed."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import select, update

from sunny_pipelines.accounts.optimization import prune_sync_history
from sunny_pipelines.db import sync_state
from sunny_pipelines.db.grants import store_google_grants
from sunny_pipelines.db.models import SyncHistory, SyncState, WatchChannel
from sunny_pipelines.definitions import build_defs
from sunny_pipelines.partitions import TRIGGER_TAG
from sunny_pipelines.vocabulary import Trigger
from sunny_pipelines_tests.runs import (
    evaluate_schedule,
    execute,
    partitions_materialized,
    range_of,
    run_range,
)

SYNC_INTERVALS = dg.AssetKey("sync_intervals")


def add_users(database, cipher, *ids: str) -> None:
    grants = [{"id": u, "email": f"{u}@example.com", "access_token": "a", "refresh_token": "r"} for u in ids]
    with database.begin() as conn:
        store_google_grants(conn, cipher, grants)


def state(database, user_id: str, service: str) -> SyncState:
    with database.begin() as conn:
        return conn.execute(
            select(SyncState).where(SyncState.user_id == user_id, SyncState.service == service)
        ).one()


def history(database, user_id: str | None = None) -> list:
    query = select(SyncHistory).order_by(SyncHistory.id)
    if user_id is not None:
        query = query.where(SyncHistory.user_id == user_id)
    with database.begin() as conn:
        return conn.execute(query).all()


def put_history(database, user_id, service, count, every, changes, *, ok=True, end=None, trigger="schedule"):
    """``count`` past syncs of ``user_id``'s ``service``, ``every`` apart, the last at ``end``."""
    end = end or datetime.now(UTC) - timedelta(minutes=1)
    rows = [
        {
            "user_id": user_id,
            "service": service,
            "finished_at": end - every * (count - 1 - i),
            "ok": ok,
            "change_count": changes if ok else 0,
            "trigger": trigger,
            "error": None if ok else "HttpError 500",
        }
        for i in range(count)
    ]
    with database.begin() as conn:
        conn.execute(SyncHistory.__table__.insert(), rows)


def put_state(database, user_id, service, interval, *, failures=0, updated_at=None):
    with database.begin() as conn:
        conn.execute(
            SyncState.__table__.insert().values(
                user_id=user_id,
                service=service,
                interval_seconds=interval,
                last_synced_at=datetime.now(UTC) - timedelta(minutes=1),
                consecutive_failures=failures,
                updated_at=updated_at or datetime.now(UTC),
            )
        )


def put_channel(database, channel_id, user_id, kind, expires_in: timedelta, status="active"):
    with database.begin() as conn:
        conn.execute(
            WatchChannel.__table__.insert().values(
                id=channel_id,
                user_id=user_id,
                service=kind,
                status=status,
                expires_at=datetime.now(UTC) + expires_in,
            )
        )


def test_each_outcome_is_appended_to_the_history_in_the_same_transaction(database, cipher):
    add_users(database, cipher, "u1")
    with database.begin() as conn:
        sync_state.record_success(conn, "u1", "drive", 7, trigger="schedule")
        sync_state.record_failure(conn, "u1", "drive", "HttpError 503", trigger=Trigger.INBOX.value)
        sync_state.record_success(conn, "u1", "drive", 2)  # callers that know no trigger still work
    rows = [(r.service, r.ok, r.change_count, r.trigger, r.error) for r in history(database)]
    assert rows == [
        ("drive", True, 7, "schedule", None),
        ("drive", False, 0, "inbox", "HttpError 503"),
        ("drive", True, 2, None, None),
    ]
    with pytest.raises(RuntimeError), database.begin() as conn:
        sync_state.record_success(conn, "u1", "gmail", 3)
        raise RuntimeError("the sync's own transaction failed")
    assert len(history(database)) == 3
    with database.begin() as conn:
        assert conn.execute(select(SyncState).where(SyncState.service == "gmail")).first() is None


def test_a_failing_sync_waits_its_interval_from_the_last_failure(database, cipher):
    add_users(database, cipher, "u1", "u2")
    now = datetime.now(UTC)
    with database.begin() as conn:
        for user in ("u1", "u2"):
            sync_state.record_success(conn, user, "drive", 1, default_interval_seconds=3600)
        conn.execute(update(SyncState).values(last_synced_at=now - timedelta(hours=3)))
        sync_state.record_failure(conn, "u1", "drive", "HttpError 500")
        # u2 is long due; u1 failed just now and waits its hour from the failure.
        assert sync_state.due_users(conn, "drive", now) == {"u2"}
        assert sync_state.due_users(conn, "drive", now + timedelta(minutes=59, seconds=30)) == {"u1", "u2"}
        # A success ends the back-off: the old failure no longer counts.
        sync_state.record_success(conn, "u1", "drive", 0)
        conn.execute(update(SyncState).values(last_synced_at=now - timedelta(hours=3)))
        assert sync_state.due_users(conn, "drive", now) == {"u1", "u2"}
    # A sync stamped a few seconds after its tick is due again at the tick one interval later.
    assert sync_state.is_due(now - timedelta(minutes=4, seconds=50), 300, now)
    assert not sync_state.is_due(now - timedelta(minutes=3), 300, now)


def test_old_history_is_pruned_in_batches(database, cipher):
    add_users(database, cipher, "u1")
    now = datetime.now(UTC)
    put_history(database, "u1", "gmail", 25, timedelta(hours=1), 1, end=now - timedelta(days=15))
    put_history(database, "u1", "gmail", 5, timedelta(hours=1), 1, end=now)
    assert prune_sync_history(database, now - timedelta(days=14), batch_size=10) == 25
    assert len(history(database)) == 5


def test_the_asset_tunes_each_user_and_service_and_shows_the_distribution(resources, database, cipher):
    users = ["busy", "quiet", "pushed", "failing", "new", "stale_push"]
    add_users(database, cipher, *users)
    long_ago = datetime.now(UTC) - timedelta(days=3)
    for user in users:
        put_state(database, user, "calendar", 1800, updated_at=long_ago)
    put_state(database, "busy", "gmail", 300)
    put_state(database, "busy", "calendar_list", 3600)  # not a tuned service: left alone
    put_state(database, "failing", "drive", 900, failures=3)
    day = timedelta(days=1)
    put_history(database, "busy", "calendar", 48, timedelta(minutes=30), 20)  # 40 changes an hour
    put_history(database, "busy", "gmail", 48, timedelta(minutes=30), 5)  # 10 an hour
    put_history(database, "quiet", "calendar", 24, timedelta(hours=1), 0)
    put_history(database, "pushed", "calendar", 48, timedelta(minutes=30), 20)
    put_history(database, "stale_push", "calendar", 24, timedelta(hours=1), 0)
    put_history(database, "failing", "drive", 24, timedelta(minutes=30), 2, end=datetime.now(UTC) - day)
    put_history(database, "failing", "drive", 3, timedelta(minutes=15), 0, ok=False)
    put_history(
        database, "busy", "calendar", 100, timedelta(minutes=10), 50, end=datetime.now(UTC) - 20 * day
    )
    put_channel(database, "ch-live", "pushed", "calendar_events", timedelta(days=5))
    put_channel(database, "ch-expired", "stale_push", "calendar_events", -timedelta(hours=1))
    put_channel(database, "ch-list", "quiet", "calendar_list", timedelta(days=5))

    defs = build_defs(resources)
    schedule = defs.get_schedule_def("sync_optimization_schedule")
    assert (schedule.cron_schedule, schedule.default_status) == (
        "0 4 * * *",
        dg.DefaultScheduleStatus.RUNNING,
    )
    assert defs.resolve_assets_def(SYNC_INTERVALS).op.pool == "sync"
    with dg.instance_for_test() as instance:
        job = defs.resolve_job_def(schedule.job_name)
        assert job.execute_in_process(instance=instance).success
        metadata = instance.get_latest_materialization_event(SYNC_INTERVALS).asset_materialization.metadata

        intervals = {user: state(database, user, "calendar").interval_seconds for user in users}
        assert intervals == {
            "busy": 8 * 60,  # 40 changes an hour: 5 changes take 7.5 min, rounded to whole minutes
            "quiet": 86400,  # nothing changes (its calendar-list channel says nothing of events)
            "pushed": 6 * 3600,  # as busy, but its events channel is live: the schedule is a backstop
            "failing": 1800,  # no calendar history: the default
            "new": 1800,
            "stale_push": 86400,  # its channel expired: quiet, polled once a day
        }
        assert state(database, "busy", "gmail").interval_seconds == 30 * 60  # 5 changes per half hour
        # 4 changes an hour (75 min), doubled for each of the 3 failures since its last success.
        assert state(database, "failing", "drive").interval_seconds == 75 * 60 * 2**3
        assert state(database, "busy", "calendar_list").interval_seconds == 3600
        # Only rows whose interval changed were written.
        assert (
            state(database, "new", "calendar").updated_at == state(database, "failing", "calendar").updated_at
        )
        assert abs(state(database, "new", "calendar").updated_at - long_ago) < timedelta(seconds=1)
        # History older than 14 days is gone; the recent history stays.
        assert all(r.finished_at > datetime.now(UTC) - timedelta(days=14) for r in history(database))
        assert len(history(database, "busy")) == 96

        assert metadata["pairs"].value == 8
        assert metadata["intervals_changed"].value == 6
        assert metadata["history_rows_pruned"].value == 100
        assert metadata["calendar_count"].value == 6
        assert metadata["calendar_min_seconds"].value == 480.0
        assert metadata["calendar_median_seconds"].value == (1800 + 6 * 3600) / 2  # 480 1800 1800 | 21600 ...
        assert metadata["calendar_max_seconds"].value == 86400.0
        assert metadata["calendar_reasons"].value == {
            "busy": 1,
            "no_history": 2,
            "push_healthy": 1,
            "quiet": 2,
        }
        assert metadata["drive_reasons"].value == {"failing": 1}
        table = metadata["distribution"].value
        assert "| calendar | 6 | 8 min |" in table and "| drive | 1 | 10 h |" in table

        # Nothing new: a second run changes nothing.
        assert job.execute_in_process(instance=instance).success
        again = instance.get_latest_materialization_event(SYNC_INTERVALS).asset_materialization.metadata
        assert again["intervals_changed"].value == 0


def test_the_calendar_schedule_follows_the_optimized_intervals(resources, database, connected_users):
    defs = build_defs(resources)
    keys = [u["id"] for u in connected_users]
    busy, quiet, pushed = keys
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", keys)
        assert run_range(defs, instance, "calendar_sync", keys, Trigger.FIRST_SYNC).success
        # The day before: the busy user's calendar changed 40 times an hour, the others' never.
        put_history(
            database,
            busy,
            "calendar",
            48,
            timedelta(minutes=30),
            20,
            end=datetime.now(UTC) - timedelta(minutes=2),
        )
        put_history(
            database,
            quiet,
            "calendar",
            48,
            timedelta(minutes=30),
            0,
            end=datetime.now(UTC) - timedelta(minutes=2),
        )
        put_history(
            database,
            pushed,
            "calendar",
            48,
            timedelta(minutes=30),
            20,
            end=datetime.now(UTC) - timedelta(minutes=2),
        )
        put_channel(database, "ch-pushed", pushed, "calendar_events", timedelta(days=5))
        # Ten minutes after everyone's sync: with the default 30 minutes nobody is due.
        with database.begin() as conn:
            conn.execute(update(SyncState).values(last_synced_at=datetime.now(UTC) - timedelta(minutes=10)))
        assert evaluate_schedule(defs, "calendar_sync_schedule", instance, resources).skip_message

        optimization = defs.get_schedule_def("sync_optimization_schedule").job_name
        assert defs.resolve_job_def(optimization).execute_in_process(instance=instance).success
        assert state(database, busy, "calendar").interval_seconds == 8 * 60
        assert state(database, quiet, "calendar").interval_seconds == 86400
        assert state(database, pushed, "calendar").interval_seconds == 6 * 3600

        tick = evaluate_schedule(defs, "calendar_sync_schedule", instance, resources)
        [request] = tick.run_requests
        assert range_of(request) == (busy, busy) and request.tags[TRIGGER_TAG] == "schedule"
        quiet_before = state(database, quiet, "calendar").last_synced_at
        run = execute(defs, instance, request)
        assert run.success and partitions_materialized(run) == [busy]
        assert state(database, busy, "calendar").last_synced_at > datetime.now(UTC) - timedelta(minutes=1)
        assert state(database, quiet, "calendar").last_synced_at == quiet_before
        assert [r.trigger for r in history(database, busy) if r.service == "calendar"][-1] == "schedule"
        # Just synced: the next tick finds nobody due.
        assert evaluate_schedule(defs, "calendar_sync_schedule", instance, resources).skip_message
