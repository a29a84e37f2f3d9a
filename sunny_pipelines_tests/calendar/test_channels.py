"""Calendar push channels against the sandbox and the receiver: opened after the first sync,
replaced before they expire, stopped when their calendar or their user leaves; a calendarList
notification refreshes the user's calendars."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import select, update

from sunny_pipelines.calendar.channels import EVENTS_CHANNEL, LIST_CHANNEL
from sunny_pipelines.db.models import GoogleConnection, User, UserCalendar, WatchChannel, WebhookInbox
from sunny_pipelines.db.secrets import channel_token_digest
from sunny_pipelines.definitions import build_defs
from sunny_pipelines.partitions import range_tags
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines_tests.runs import evaluate_schedule, evaluate_sensor
from sunny_pipelines_tests.stack import wait_for


@pytest.fixture
def push_resources(resources, database, cipher, sandbox, receiver) -> dict:
    google = GoogleResource(
        database=database, cipher=cipher, sandbox_url=sandbox.base_url, push_receiver_url=receiver
    )
    return {**resources, "google": google}


def channels(database, user_id: str, status: str = "active") -> list:
    with database.begin() as conn:
        return conn.execute(
            select(WatchChannel.__table__).where(
                WatchChannel.user_id == user_id, WatchChannel.status == status
            )
        ).all()


def sandbox_channels(sandbox, user_id: str) -> dict[str, object]:
    return {c.id: c for c in sandbox.world.live_channels() if c.user_id == user_id}


def run_job(defs, instance, name: str, keys: list[str], **tags) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(name).execute_in_process(
        instance=instance, tags={**range_tags(keys[0], keys[-1]), **tags}, raise_on_error=False
    )


def test_first_sync_opens_a_channel_per_calendar_and_one_for_the_list(
    push_resources, database, sandbox, connected_users
):
    ada = connected_users[0]
    defs = build_defs(push_resources)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", [ada["id"]])
        assert run_job(defs, instance, "calendar_sync", [ada["id"]]).success
        # A second sync opens nothing more.
        assert run_job(defs, instance, "calendar_sync", [ada["id"]]).success
    rows = channels(database, ada["id"])
    calendars = sandbox.world.calendar_truth(ada["email"])
    assert sorted((r.service, r.target) for r in rows) == sorted(
        [(LIST_CHANNEL, None)] + [(EVENTS_CHANNEL, cid) for cid in calendars]
    )
    live = sandbox_channels(sandbox, ada["id"])
    assert set(live) == {r.id for r in rows}
    for row in rows:
        # Google holds the secret; we hold only its hash.
        assert row.token_hash == channel_token_digest(live[row.id].token)
        assert row.resource_id == live[row.id].resource_id
        assert row.expires_at > datetime.now(UTC) + timedelta(days=6)


def test_renewal_replaces_expiring_channels_and_stops_the_old_ones(
    push_resources, database, sandbox, connected_users
):
    ada = connected_users[0]
    defs = build_defs(push_resources)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", [u["id"] for u in connected_users])
        run_job(defs, instance, "calendar_sync", [ada["id"]])
        assert not evaluate_schedule(
            defs, "calendar_watch_renewal_schedule", instance, push_resources
        ).run_requests
        expiring = next(r for r in channels(database, ada["id"]) if r.service == EVENTS_CHANNEL)
        with database.begin() as conn:
            conn.execute(
                update(WatchChannel)
                .where(WatchChannel.id == expiring.id)
                .values(expires_at=datetime.now(UTC) + timedelta(hours=3))
            )
        [request] = evaluate_schedule(
            defs, "calendar_watch_renewal_schedule", instance, push_resources
        ).run_requests
        result = defs.resolve_job_def(request.job_name).execute_in_process(
            instance=instance, tags=request.tags
        )
        assert result.success
    replaced = channels(database, ada["id"], status="replaced")
    assert [r.id for r in replaced] == [expiring.id]
    successor = [r for r in channels(database, ada["id"]) if r.target == expiring.target]
    assert len(successor) == 1 and successor[0].id != expiring.id
    assert expiring.id not in sandbox_channels(sandbox, ada["id"])
    assert successor[0].id in sandbox_channels(sandbox, ada["id"])


def test_calendar_list_notifications_add_and_remove_calendars(
    push_resources, database, sandbox, connected_users
):
    ada = connected_users[0]
    defs = build_defs(push_resources)
    world = sandbox.world
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", [ada["id"]])
        run_job(defs, instance, "calendar_sync", [ada["id"]])
        removed = next(cid for cid in world.calendar_truth(ada["email"]) if cid != ada["email"])
        world.calendar.unsubscribe(ada["id"], removed)
        created = world.calendar.insert_calendar(world.get_user(ada["email"]), {"summary": "Board meetings"})

        def list_notifications() -> int:
            with database.begin() as conn:
                return len(
                    conn.execute(select(WebhookInbox.id).where(WebhookInbox.status == "pending")).all()
                )

        wait_for(lambda: list_notifications() >= 2, timeout=10)
        cursor = None
        for _ in range(3):  # until the sensor has nothing left to request
            tick = evaluate_sensor(defs, "webhook_inbox_sensor", instance, push_resources, cursor=cursor)
            cursor = tick.cursor or cursor
            for request in tick.run_requests:
                assert run_job(defs, instance, "calendar_sync", [ada["id"]], **request.tags).success
    with database.begin() as conn:
        calendars = {
            calendar_id: removed_at
            for calendar_id, removed_at in conn.execute(
                select(UserCalendar.calendar_id, UserCalendar.removed_at).where(
                    UserCalendar.user_id == ada["id"]
                )
            )
        }
        assert calendars[created["id"]] is None
        assert calendars[removed] is not None
        assert conn.execute(select(WebhookInbox.status).distinct()).scalars().all() == ["done"]
    targets = {r.target: r for r in channels(database, ada["id"])}
    assert created["id"] in targets and removed not in targets
    assert [r.target for r in channels(database, ada["id"], status="stopped")] == [removed]


def test_channels_of_departed_users_are_stopped(push_resources, database, sandbox, connected_users):
    ada, alan, grace = connected_users
    defs = build_defs(push_resources)
    with dg.instance_for_test() as instance:
        keys = [u["id"] for u in connected_users]
        instance.add_dynamic_partitions("users", keys)
        run_job(defs, instance, "calendar_sync", keys)
        with database.begin() as conn:
            conn.execute(update(User).where(User.id == ada["id"]).values(status="deleted"))
            conn.execute(
                update(GoogleConnection)
                .where(GoogleConnection.user_id == alan["id"])
                .values(status="revoked")
            )
        result = defs.resolve_job_def("departed_user_channels_job").execute_in_process(instance=instance)
        assert result.success
        # Nobody lost a channel: the renewal schedule has nothing to re-open for the one who stayed.
        assert not evaluate_schedule(
            defs, "calendar_webhook_renewal_schedule", instance, push_resources
        ).run_requests
    assert channels(database, ada["id"]) == [] and channels(database, alan["id"]) == []
    assert len(channels(database, grace["id"])) >= 2
    # Ada's grant still worked, so Google was told to stop; Alan's channels simply expire there.
    assert sandbox_channels(sandbox, ada["id"]) == {}
    assert sandbox_channels(sandbox, grace["id"])
