"""The Drive assets as Dagster runs them: batched runs, the schedules evaluated as the daemon
does, and a change pushed through the receiver syncing only the user concerned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
from googleapiclient.http import MediaInMemoryUpload
from sqlalchemy import select, update

from sunny_pipelines.db.models import User, WatchChannel
from sunny_pipelines.definitions import build_defs
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines.vocabulary import Source, Trigger
from sunny_pipelines_tests.google_clients import google_client
from sunny_pipelines_tests.inbox.helpers import pending_users
from sunny_pipelines_tests.runs import (
    evaluate_schedule,
    evaluate_sensor,
    execute,
    materialized,
    partitions_materialized,
    range_of,
    run_range,
)
from sunny_pipelines_tests.stack import wait_for

from .helpers import stored_file, stored_rows, truth_rows


def channels(database, user_id: str) -> list:
    with database.begin() as conn:
        return conn.execute(
            select(WatchChannel.__table__)
            .where(WatchChannel.user_id == user_id, WatchChannel.service == "drive")
            .order_by(WatchChannel.created_at)
        ).all()


def test_batched_run_and_schedule_cover_every_due_user(resources, database, sandbox, connected_users):
    defs = build_defs(resources)
    keys = [u["id"] for u in connected_users]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", keys)
        [request] = evaluate_schedule(defs, "drive_sync_schedule", instance, resources).run_requests
        assert range_of(request) == (keys[0], keys[-1])
        assert execute(defs, instance, request).success
        assert materialized(instance, "drive_files") == set(keys)
        for user in connected_users:
            assert stored_rows(database, user["id"]) == truth_rows(sandbox, user)
        # Everyone just synced: the next tick has nobody to sync.
        assert not evaluate_schedule(defs, "drive_sync_schedule", instance, resources).run_requests


def test_a_drive_change_pushed_through_the_receiver_syncs_only_that_user(
    resources, database, cipher, sandbox, connected_users, receiver
):
    google = GoogleResource(
        database=database, cipher=cipher, sandbox_url=sandbox.base_url, push_receiver_url=receiver
    )
    resources = {**resources, "google": google}
    defs = build_defs(resources)
    keys = [u["id"] for u in connected_users]
    ada = connected_users[0]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", keys)
        first = run_range(defs, instance, "drive_sync", keys, Trigger.FIRST_SYNC)
        assert first.success
        [channel] = channels(database, ada["id"])
        # Drive's default is 1 hour; the channel was asked for days, explicitly.
        assert channel.expires_at > datetime.now(UTC) + timedelta(days=5)

        created = (
            google_client(sandbox, ada, "drive")
            .files()
            .create(body={"name": "Pushed.txt"}, media_body=MediaInMemoryUpload(b"hi", mimetype="text/plain"))
            .execute()
        )

        wait_for(lambda: pending_users(database, Source.GOOGLE_DRIVE), timeout=10, interval=0.1)
        assert set(pending_users(database, Source.GOOGLE_DRIVE)) == {ada["id"]}
        tick = evaluate_sensor(defs, "webhook_inbox_sensor", instance, resources)
        [request] = tick.run_requests
        assert request.job_name == "drive_sync"
        assert range_of(request) == (ada["id"], ada["id"])
        result = execute(defs, instance, request)
        assert result.success
        assert stored_file(database, ada["id"], created["id"]).name == "Pushed.txt"
        assert partitions_materialized(result) == [ada["id"]]
        assert not pending_users(database, Source.GOOGLE_DRIVE)


def test_watch_cleanup_replaces_expiring_channels_and_stops_orphaned_ones(
    resources, database, cipher, sandbox, connected_users, receiver
):
    google = GoogleResource(
        database=database, cipher=cipher, sandbox_url=sandbox.base_url, push_receiver_url=receiver
    )
    resources = {**resources, "google": google}
    defs = build_defs(resources)
    keys = [u["id"] for u in connected_users]
    ada, alan, _ = connected_users
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", keys)
        assert run_range(defs, instance, "drive_sync", keys, Trigger.FIRST_SYNC).success
        assert not evaluate_schedule(defs, "drive_watch_cleanup_schedule", instance, resources).run_requests
        # Ada's channel is about to expire; Alan left.
        with database.begin() as conn:
            conn.execute(
                update(WatchChannel)
                .where(WatchChannel.user_id == ada["id"])
                .values(expires_at=datetime.now(UTC) + timedelta(hours=3))
            )
            conn.execute(update(User).where(User.id == alan["id"]).values(status="deleted"))
            # The third user's channel lapsed unnoticed.
            conn.execute(
                update(WatchChannel)
                .where(WatchChannel.user_id == keys[2])
                .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
            )
        # At 01:00 the orphans go first: Alan's channel is stopped, the lapsed one recorded expired.
        orphans = defs.get_schedule_def("orphaned_drive_channels_schedule")
        assert orphans.cron_schedule == "0 1 * * *"
        assert defs.resolve_job_def(orphans.job_name).execute_in_process(instance=instance).success
        assert [c.status for c in channels(database, alan["id"])] == ["stopped"]
        assert [c.status for c in channels(database, keys[2])] == ["expired"]

        # Then Ada's expiring channel is replaced and the third user gets a new one; Alan, inside
        # the range, gets none.
        [request] = evaluate_schedule(defs, "drive_watch_cleanup_schedule", instance, resources).run_requests
        assert range_of(request) == (ada["id"], keys[2])
        assert execute(defs, instance, request).success
        old, new = channels(database, ada["id"])
        assert old.status == "replaced" and new.status == "active"
        assert new.expires_at > datetime.now(UTC) + timedelta(days=5)
        assert [c.id for c in sandbox.world.live_channels() if c.id in (old.id, new.id)] == [new.id]
        assert [c.status for c in channels(database, keys[2])] == ["expired", "active"]
        assert [c.status for c in channels(database, alan["id"])] == ["stopped"]
