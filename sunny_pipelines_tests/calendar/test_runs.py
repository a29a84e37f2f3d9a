"""The calendar asset as Dagster runs it: batched range runs, the schedule and the users sensor
evaluated as the daemon does (`evaluate_tick`)."""

from __future__ import annotations

import dagster as dg
from sqlalchemy import select, update

from sunny_pipelines.db import sync_state
from sunny_pipelines.db.models import GoogleConnection, User
from sunny_pipelines.definitions import build_defs
from sunny_pipelines.partitions import RANGE_END_TAG, RANGE_START_TAG, TRIGGER_TAG
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines.vocabulary import Trigger
from sunny_pipelines_tests.runs import evaluate_schedule, evaluate_sensor, run_range

from .helpers import stored_rows, truth_rows

CALENDAR_EVENTS = dg.AssetKey("calendar_events")


def run_calendar_sync(defs, instance, keys, trigger=None):
    return run_range(defs, instance, "calendar_sync", keys, trigger)


def test_batched_run_materializes_each_user_and_fails_only_the_revoked_one(
    resources, database, sandbox, connected_users
):
    defs = build_defs(resources)
    keys = [u["id"] for u in connected_users]
    revoked = connected_users[1]
    sandbox.world.inject_fault("revoke", user_email=revoked["email"])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", keys)
        result = run_calendar_sync(defs, instance, keys)

        assert not result.success
        assert instance.get_materialized_partitions(CALENDAR_EVENTS) == {keys[0], keys[2]}
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        message = failure.step_failure_data.user_failure_data.description
        assert revoked["id"] in message and "invalid_grant" in message
        assert keys[0] not in message
        mats = [e.materialization for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
        metadata = {m.partition: m.metadata for m in mats}
        assert metadata[keys[0]]["events_upserted"].value > 0
        assert metadata[keys[0]]["api_calls"].value >= 2
        assert metadata[keys[0]]["duration_seconds"].value > 0
    for user in (connected_users[0], connected_users[2]):
        assert stored_rows(database, user["id"]) == truth_rows(sandbox, user)
    with database.begin() as conn:
        status = conn.execute(
            select(GoogleConnection.status).where(GoogleConnection.user_id == revoked["id"])
        )
        assert status.scalar() == "needs_reauth"


def test_schedule_requests_batched_runs_for_due_users_only(resources, database, connected_users):
    defs = build_defs(resources)
    keys = [u["id"] for u in connected_users]
    with database.begin() as conn:
        sync_state.record_success(conn, keys[0], "calendar", 0)  # just synced: not due
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", keys)
        result = evaluate_schedule(defs, "calendar_sync_schedule", instance, resources)
        [request] = result.run_requests
        assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (keys[1], keys[2])
        assert request.tags[TRIGGER_TAG] == "schedule"

        # The run re-checks who is due: a user synced in the meantime is skipped, not failed.
        with database.begin() as conn:
            sync_state.record_success(conn, keys[2], "calendar", 0)
        run = run_calendar_sync(defs, instance, keys, Trigger.SCHEDULE)
        assert run.success
        assert instance.get_materialized_partitions(CALENDAR_EVENTS) == {keys[1]}

        with database.begin() as conn:
            sync_state.record_success(conn, keys[1], "calendar", 0)
        skipped = evaluate_schedule(defs, "calendar_sync_schedule", instance, resources)
        assert not skipped.run_requests and skipped.skip_message


def test_users_sensor_adds_new_users_and_removes_those_who_left(resources, database, connected_users):
    defs = build_defs(resources)
    keys = [u["id"] for u in connected_users]
    with dg.instance_for_test() as instance:
        result = evaluate_sensor(defs, "connected_users_sensor", instance, resources)
        [add] = result.dynamic_partitions_requests
        assert list(add.partition_keys) == keys
        # The first sync covers every service of every new user: one batched run per domain.
        assert sorted(r.job_name for r in result.run_requests) == [
            "calendar_sync",
            "drive_sync",
            "email_sync",
        ]
        for first_sync in result.run_requests:
            assert (first_sync.tags[RANGE_START_TAG], first_sync.tags[RANGE_END_TAG]) == (keys[0], keys[-1])
            assert first_sync.tags[TRIGGER_TAG] == "first_sync"  # a first sync covers every user in range
        instance.add_dynamic_partitions("users", keys)

        assert evaluate_sensor(defs, "connected_users_sensor", instance, resources).skip_message

        with database.begin() as conn:
            conn.execute(
                update(GoogleConnection).where(GoogleConnection.user_id == keys[0]).values(status="revoked")
            )
            conn.execute(update(User).where(User.id == keys[1]).values(status="deleted"))
            conn.execute(
                update(GoogleConnection)
                .where(GoogleConnection.user_id == keys[2])
                .values(status="needs_reauth")
            )
        result = evaluate_sensor(defs, "connected_users_sensor", instance, resources)
        [delete] = result.dynamic_partitions_requests
        assert sorted(delete.partition_keys) == sorted(keys[:2])  # re-consent pending keeps its partition
        assert not result.run_requests


def test_a_channel_that_fails_to_open_leaves_the_data_partition_materialized(
    resources, database, cipher, sandbox, connected_users
):
    # Google refuses the channel's address; the user's events still synced.
    google = GoogleResource(
        database=database, cipher=cipher, sandbox_url=sandbox.base_url, push_receiver_url="ftp://nowhere"
    )
    defs = build_defs({**resources, "google": google})
    ada = connected_users[0]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", [ada["id"]])
        result = run_calendar_sync(defs, instance, [ada["id"]])
        assert result.success
        assert instance.get_materialized_partitions(CALENDAR_EVENTS) == {ada["id"]}
        [materialization] = result.asset_materializations_for_node("calendar_events")
        assert "invalidAddress" in materialization.metadata["channels_error"].value
    assert stored_rows(database, ada["id"]) == truth_rows(sandbox, ada)
