"""The Gmail assets as Dagster runs them: the email processing schedule evaluated as the daemon
does, a new message pushed through Pub/Sub and the receiver syncing only its mailbox's user, and
the watch renewal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
from sqlalchemy import select, update

from sunny_pipelines.db.models import Email, User, WatchChannel
from sunny_pipelines.definitions import build_defs
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines.vocabulary import Source, Trigger
from sunny_pipelines_tests.google_clients import GMAIL_TOPIC, google_client
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

from .mailbox import insert, plain_email, stored_email, stored_rows, truth_rows


def watches(database, user_id: str) -> list:
    with database.begin() as conn:
        return conn.execute(
            select(WatchChannel.__table__)
            .where(WatchChannel.user_id == user_id, WatchChannel.service == "gmail")
            .order_by(WatchChannel.created_at)
        ).all()


def push_resources(resources, database, cipher, sandbox) -> dict:
    google = GoogleResource(
        database=database, cipher=cipher, sandbox_url=sandbox.base_url, gmail_pubsub_topic=GMAIL_TOPIC
    )
    return {**resources, "google": google}


def test_email_processing_schedule_syncs_and_processes_every_due_user(
    resources, database, sandbox, connected_users
):
    defs = build_defs(resources)
    keys = [u["id"] for u in connected_users]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", keys)
        [request] = evaluate_schedule(defs, "email_processing_schedule", instance, resources).run_requests
        assert request.tags["sunny/trigger"] == "schedule"
        result = execute(defs, instance, request)
        assert result.success
        assert materialized(instance, "emails") == set(keys)
        with database.begin() as conn:
            statuses = set(conn.execute(select(Email.processing_status)).scalars())
        assert statuses <= {"processed", "failed"}
        for user in connected_users:
            assert stored_rows(database, user["id"]) == truth_rows(sandbox, user, days=30)
        assert not evaluate_schedule(defs, "email_processing_schedule", instance, resources).run_requests


def test_a_new_message_pushed_through_pubsub_syncs_only_that_mailbox(
    resources, database, cipher, sandbox, connected_users, receiver
):
    resources = push_resources(resources, database, cipher, sandbox)
    defs = build_defs(resources)
    keys = [u["id"] for u in connected_users]
    ada = connected_users[0]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", keys)
        assert run_range(defs, instance, "email_sync", keys, Trigger.FIRST_SYNC).success
        [watch] = watches(database, ada["id"])
        assert watch.target == GMAIL_TOPIC and watch.status == "active"
        assert watch.expires_at > datetime.now(UTC) + timedelta(days=6)

        sent = insert(
            google_client(sandbox, ada, "gmail"),
            plain_email("grace@example.com", ada["email"], "Pushed through Pub/Sub", "Hello"),
        )

        wait_for(lambda: pending_users(database, Source.GOOGLE_GMAIL), timeout=10, interval=0.1)
        assert set(pending_users(database, Source.GOOGLE_GMAIL)) == {ada["id"]}
        [request] = evaluate_sensor(defs, "webhook_inbox_sensor", instance, resources).run_requests
        assert request.job_name == "email_sync"
        assert range_of(request) == (ada["id"], ada["id"])
        result = execute(defs, instance, request)
        assert result.success
        row = stored_email(database, ada["id"], sent["id"])
        assert row.subject == "Pushed through Pub/Sub" and row.processing_status == "processed"
        assert partitions_materialized(result) == [ada["id"]]
        assert not pending_users(database, Source.GOOGLE_GMAIL)


def test_watch_renewal_renews_day_old_watches_and_departed_users_are_stopped(
    resources, database, cipher, sandbox, connected_users, receiver
):
    resources = push_resources(resources, database, cipher, sandbox)
    defs = build_defs(resources)
    keys = [u["id"] for u in connected_users]
    ada, alan, _ = connected_users
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", keys)
        assert run_range(defs, instance, "email_sync", keys, Trigger.FIRST_SYNC).success
        assert evaluate_schedule(defs, "gmail_watch_renewal_schedule", instance, resources).skip_message
        # Ada's watch is a day old (Google recommends renewing daily); Alan left.
        with database.begin() as conn:
            conn.execute(
                update(WatchChannel)
                .where(WatchChannel.user_id == ada["id"])
                .values(expires_at=datetime.now(UTC) + timedelta(days=5, hours=20))
            )
            conn.execute(update(User).where(User.id == alan["id"]).values(status="deleted"))
        [request] = evaluate_schedule(defs, "gmail_watch_renewal_schedule", instance, resources).run_requests
        assert range_of(request) == (ada["id"], ada["id"])
        assert execute(defs, instance, request).success
        old, new = watches(database, ada["id"])
        assert (old.status, new.status) == ("replaced", "active")

        assert (
            defs.resolve_job_def("departed_gmail_watches_job").execute_in_process(instance=instance).success
        )
        assert [w.status for w in watches(database, alan["id"])] == ["stopped"]
