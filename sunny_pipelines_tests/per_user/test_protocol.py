"""The per-user sync protocol on its own, through a probe domain registered the way every domain
registers itself: triggers, the (user, service) lock, claiming and finishing inbox rows, bounded
failures, dead letters and their replay, late commits. Real PostgreSQL and a real Dagster
instance; only the domain's work is the test's own."""

import threading
import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import select, text, update

from sunny_pipelines import calendar
from sunny_pipelines.db.grants import store_google_grants
from sunny_pipelines.db.models import SyncState, WebhookInbox
from sunny_pipelines.definitions import build_defs
from sunny_pipelines.inbox import rows as inbox_rows
from sunny_pipelines.inbox.rows import MAX_ATTEMPTS
from sunny_pipelines.inbox.sensors import InboxCursor
from sunny_pipelines.partitions import TRIGGER_TAG, users
from sunny_pipelines.per_user import USERS_NAMED_IN_FAILURE, Domain, UserSync, sync_users
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.vocabulary import Source, Trigger
from sunny_pipelines_tests.inbox import helpers as inbox
from sunny_pipelines_tests.runs import evaluate_sensor, execute, materialized, run_range

PROBE = UserSync(service="probe", inbox_sources=frozenset({Source.GOOGLE_DRIVE}), lock_wait_seconds=1)


class Probe:
    """What the probe domain's work saw, and which users it fails."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int]]] = []
        self.failing: set[str] = set()
        self._lock = threading.Lock()

    def work(self, user_id: str, claimed: list[inbox_rows.InboxRow]) -> dict[str, int]:
        with self._lock:
            self.calls.append((user_id, [row.id for row in claimed]))
        if user_id in self.failing:
            raise RuntimeError(f"probe cannot reach the service for {user_id}")
        return {"change_count": len(claimed), "rows_seen": len(claimed)}


def probe_domain(probe: Probe) -> Domain:
    @dg.asset(name="probe_items", partitions_def=users, output_required=False)
    def probe_items(context: dg.AssetExecutionContext, database: DatabaseResource):
        yield from sync_users(context, database, PROBE, probe.work)

    job = dg.define_asset_job(
        "probe_sync", selection=[probe_items], partitions_def=users, executor_def=dg.in_process_executor
    )
    return Domain(
        name="probe",
        definitions=dg.Definitions(assets=[probe_items], jobs=[job]),
        sync=PROBE,
        inbox_job=job,
        first_sync_job=job,
    )


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def defs(probe, database, cipher) -> dg.Definitions:
    # One line adds the domain: the inbox sensor, the users sensor and the jobs follow.
    return build_defs({"database": database, "cipher": cipher}, domains=[probe_domain(probe)])


def add_users(database, cipher, count: int) -> list[str]:
    ids = [f"p{i:02d}" for i in range(count)]
    grants = [
        {"id": uid, "email": f"{uid}@example.com", "access_token": "a", "refresh_token": "r"} for uid in ids
    ]
    with database.begin() as conn:
        store_google_grants(conn, cipher, grants)
    return ids


def notify(database, user_id: str, source: str = Source.GOOGLE_DRIVE) -> int:
    """A notification for the probe domain (or, with ``source``, for another)."""
    return inbox.notify(database, user_id, source)


row = inbox.inbox_row


def res(database, cipher) -> dict:
    return {"database": database, "cipher": cipher}


def test_a_registered_domain_gets_its_rows_first_syncs_and_sync_state(probe, defs, database, cipher):
    keys = add_users(database, cipher, 3)
    drive_rows = [notify(database, keys[0]), notify(database, keys[2])]
    calendar_row = notify(database, keys[1], Source.GOOGLE_CALENDAR)  # no calendar domain here
    with dg.instance_for_test() as instance:
        first = evaluate_sensor(defs, "connected_users_sensor", instance, res(database, cipher))
        [first_sync] = first.run_requests
        assert (first_sync.job_name, first_sync.tags[TRIGGER_TAG]) == ("probe_sync", "first_sync")
        instance.add_dynamic_partitions("users", keys)

        tick = evaluate_sensor(defs, "webhook_inbox_sensor", instance, res(database, cipher))
        [request] = tick.run_requests
        assert (request.job_name, request.tags[TRIGGER_TAG]) == ("probe_sync", "inbox")
        assert execute(defs, instance, request).success
        # Only the users with notifications were worked on, each with its own rows.
        assert sorted(probe.calls) == [(keys[0], drive_rows[:1]), (keys[2], drive_rows[1:])]
        assert materialized(instance, "probe_items") == {keys[0], keys[2]}
    assert [row(database, r).status for r in drive_rows] == ["done", "done"]
    assert row(database, calendar_row).status == "pending"  # no domain answers it: left, visible
    with database.begin() as conn:
        states = conn.execute(select(SyncState).where(SyncState.service == "probe")).all()
    assert {s.user_id: (s.last_change_count, s.interval_seconds) for s in states} == {
        keys[0]: (1, PROBE.default_interval_seconds),
        keys[2]: (1, PROBE.default_interval_seconds),
    }


def test_the_real_domains_register_with_the_same_mechanism(database, cipher, resources):
    defs = build_defs(resources, domains=[calendar.domain])
    with dg.instance_for_test() as instance:
        add_users(database, cipher, 1)
        [request] = evaluate_sensor(defs, "connected_users_sensor", instance, resources).run_requests
        assert request.job_name == "calendar_sync"


def test_an_unknown_trigger_is_refused_not_everyone_synced(probe, defs, database, cipher):
    keys = add_users(database, cipher, 2)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", keys)
        result = run_range(defs, instance, "probe_sync", keys, **{TRIGGER_TAG: "everyone"})
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert "sunny/trigger='everyone' is not one of" in failure.step_failure_data.error.to_string()
        assert probe.calls == [] and materialized(instance, "probe_items") == set()


def test_backfill_and_first_sync_cover_everyone_schedule_only_due_users(probe, defs, database, cipher):
    keys = add_users(database, cipher, 3)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", keys)
        assert run_range(defs, instance, "probe_sync", keys).success  # a UI backfill has no tag
        assert sorted(u for u, _ in probe.calls) == keys
        probe.calls.clear()
        with database.begin() as conn:  # the second user's interval has elapsed
            conn.execute(
                update(SyncState)
                .where(SyncState.user_id == keys[1])
                .values(last_synced_at=datetime.now(UTC) - timedelta(days=1))
            )
        assert run_range(defs, instance, "probe_sync", keys, Trigger.SCHEDULE).success
        assert [u for u, _ in probe.calls] == [keys[1]]


def test_a_failed_run_names_a_few_users_and_lists_all_in_metadata(probe, defs, database, cipher):
    keys = add_users(database, cipher, 8)
    probe.failing = set(keys[1:])
    failing_row = notify(database, keys[3])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", keys)
        result = run_range(defs, instance, "probe_sync", keys)
        assert not result.success
        assert materialized(instance, "probe_items") == {keys[0]}
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        data = failure.step_failure_data.user_failure_data
        assert data.description.startswith("7 of 8 users failed: ")
        assert sum(k in data.description for k in keys) == USERS_NAMED_IN_FAILURE
        assert data.description.endswith("and 2 more (see the failed_users metadata)")
        assert set(data.metadata["failed_users"].value) == set(keys[1:])
    failed = row(database, failing_row)
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert "probe cannot reach the service" in failed.error
    with database.begin() as conn:
        state = conn.execute(select(SyncState).where(SyncState.user_id == keys[3])).one()
    assert state.consecutive_failures == 1 and "probe cannot reach" in state.last_error


def test_a_run_waits_for_the_lock_then_fails_the_user_visibly(probe, defs, database, cipher):
    keys = add_users(database, cipher, 2)
    row_id = notify(database, keys[0])
    notify(database, keys[1])
    holder = database.engine.connect()  # another run syncing the first user's probe service
    holder.execute(
        text("SELECT pg_advisory_lock(hashtextextended(:k, 0))"), {"k": f"sunny-sync:probe:{keys[0]}"}
    )
    holder.commit()
    try:
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("users", keys)
            result = run_range(defs, instance, "probe_sync", keys, Trigger.INBOX)
            assert not result.success
            assert materialized(instance, "probe_items") == {keys[1]}
    finally:
        holder.execute(text("SELECT pg_advisory_unlock_all()"))
        holder.close()
    busy = row(database, row_id)
    assert busy.status == "failed" and "another run has been syncing probe" in busy.error
    assert busy.next_attempt_at is not None  # retried after its backoff, by the next run
    assert [u for u, _ in probe.calls] == [keys[1]]


def test_claims_leave_rows_of_a_live_run_and_runs_finish_only_their_own(database, cipher):
    [user] = add_users(database, cipher, 1)
    first = notify(database, user)
    now = datetime.now(UTC)
    with dg.instance_for_test() as instance:
        live = instance.create_run_for_job(dg.GraphDefinition(name="g").to_job(), run_id=str(uuid.uuid4()))
        instance.handle_run_event(
            live.run_id, dg.DagsterEvent(event_type_value="PIPELINE_START", job_name="g", message="started")
        )

        def finished(run_ids):
            return {r for r in run_ids if (run := instance.get_run_by_id(r)) is None or run.is_finished}

        with database.begin() as conn:
            held = inbox_rows.claim(conn, user, [Source.GOOGLE_DRIVE], live.run_id, now, finished)
            second = notify(database, user)
            mine = inbox_rows.claim(conn, user, [Source.GOOGLE_DRIVE], "run-b", now, finished)
            assert [r.id for r in held] == [first] and [r.id for r in mine] == [second]
            assert inbox_rows.mark_done(conn, held, "run-b", now) == 0  # not run-b's to finish
            assert inbox_rows.mark_done(conn, mine, "run-b", now) == 1
        assert row(database, first).status == "pending"
        # Once the holder is gone, its rows are anybody's.
        instance.report_run_failed(instance.get_run_by_id(live.run_id), "worker died")
        with database.begin() as conn:
            [retaken] = inbox_rows.claim(conn, user, [Source.GOOGLE_DRIVE], "run-c", now, finished)
        assert (retaken.id, retaken.attempts) == (first, 2)


def test_dead_letters_end_failed_and_replay_puts_them_back(probe, defs, database, cipher):
    [user] = add_users(database, cipher, 1)
    row_id = notify(database, user)
    with database.begin() as conn:
        conn.execute(
            update(WebhookInbox)
            .where(WebhookInbox.id == row_id)
            .values(status="failed", attempts=MAX_ATTEMPTS, error="boom", next_attempt_at=None)
        )
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", [user])
        tick = evaluate_sensor(defs, "webhook_inbox_sensor", instance, res(database, cipher))
        assert not tick.run_requests  # a dead letter waits for an operator
        replay = defs.resolve_job_def("replay_inbox").execute_in_process(
            instance=instance,
            run_config={
                "ops": {"replay_failed_inbox_rows": {"config": {"source": "google_drive", "user_id": user}}}
            },
        )
        assert replay.success and replay.output_for_node("replay_failed_inbox_rows") == 1
        assert (row(database, row_id).status, row(database, row_id).attempts) == ("pending", 0)
        [request] = evaluate_sensor(
            defs, "webhook_inbox_sensor", instance, res(database, cipher), cursor=tick.cursor
        ).run_requests
        assert execute(defs, instance, request).success
    assert (row(database, row_id).status, row(database, row_id).attempts) == ("done", 1)


def test_replay_refuses_an_unknown_source(defs):
    with pytest.raises(Exception, match="unknown source 'fax'"):
        defs.resolve_job_def("replay_inbox").execute_in_process(
            run_config={"ops": {"replay_failed_inbox_rows": {"config": {"source": "fax"}}}}
        )


def test_a_row_committed_after_a_higher_id_is_picked_up_on_the_next_tick(probe, defs, database, cipher):
    [user] = add_users(database, cipher, 1)
    late = database.engine.connect()
    try:
        late_id = late.execute(
            WebhookInbox.__table__.insert()
            .values(source="google_drive", user_id=user, dedup_key="late", payload={})
            .returning(WebhookInbox.id)
        ).scalar_one()  # not committed yet
        early_id = notify(database, user)
        assert early_id > late_id
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("users", [user])
            tick = evaluate_sensor(defs, "webhook_inbox_sensor", instance, res(database, cipher))
            assert InboxCursor.parse(tick.cursor).last_id == early_id
            assert late_id in InboxCursor.parse(tick.cursor).gaps
            assert execute(defs, instance, tick.run_requests[0]).success
            late.commit()
            after = evaluate_sensor(
                defs, "webhook_inbox_sensor", instance, res(database, cipher), cursor=tick.cursor
            )
            [request] = after.run_requests
            assert late_id not in InboxCursor.parse(after.cursor).gaps
            assert execute(defs, instance, request).success
    finally:
        late.close()
    assert row(database, late_id).status == "done"


def test_gaps_are_forgotten_after_their_time():
    cursor = InboxCursor(last_id=10).advance([12, 15], datetime(2026, 11, 28, tzinfo=UTC))
    assert (cursor.last_id, sorted(cursor.gaps)) == (15, [11, 13, 14])
    later = cursor.advance([13], datetime(2026, 11, 28, 0, 10, tzinfo=UTC))
    assert (later.last_id, later.gaps) == (15, {})
    assert InboxCursor.parse(later.dump()) == later
