"""The health checks and `fleet_health` against PostgreSQL, run as Dagster runs them: each check
failing on purpose (a stale user, an old pending row, a dead letter, a missing, overdue or
expired channel) and passing once the cause is gone; the fleet's metadata on a prepared
database; the schedules; and the sensor that runs a domain's checks after its runs (a real
calendar sync through the sandbox)."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import update

from sunny_pipelines.db.grants import store_google_grants
from sunny_pipelines.db.models import (
    GoogleConnection,
    SyncHistory,
    SyncState,
    User,
    WatchChannel,
    WebhookInbox,
)
from sunny_pipelines.definitions import build_defs
from sunny_pipelines.inbox.rows import MAX_ATTEMPTS
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines.vocabulary import Trigger
from sunny_pipelines_tests.runs import evaluate_schedule, evaluate_sensor, run_range

CALENDAR_FRESHNESS = dg.AssetCheckKey(dg.AssetKey("calendar_events"), "sync_freshness")
DRIVE_FRESHNESS = dg.AssetCheckKey(dg.AssetKey("drive_files"), "sync_freshness")
DRIVE_CHANNELS = dg.AssetCheckKey(dg.AssetKey("drive_watch_channels"), "push_channels_live")
CALENDAR_CHANNELS = dg.AssetCheckKey(dg.AssetKey("calendar_watch_channels"), "push_channels_live")
PENDING = dg.AssetCheckKey(dg.AssetKey("webhook_inbox"), "inbox_pending_age")
DEAD_LETTERS = dg.AssetCheckKey(dg.AssetKey("webhook_inbox"), "inbox_dead_letters")


@pytest.fixture
def push_resources(resources, database, cipher, sandbox) -> dict:
    """The code location's resources with push configured (receiver URL and Pub/Sub topic)."""
    google = GoogleResource(
        database=database,
        cipher=cipher,
        sandbox_url=sandbox.base_url,
        push_receiver_url="https://hooks.sunny.test",
        gmail_pubsub_topic="projects/sunny/topics/gmail",
    )
    return {**resources, "google": google}


def add_users(database, cipher, *ids: str) -> None:
    grants = [{"id": u, "email": f"{u}@example.com", "access_token": "a", "refresh_token": "r"} for u in ids]
    with database.begin() as conn:
        store_google_grants(conn, cipher, grants)


def put_state(database, user_id, service, synced_ago: timedelta, interval=timedelta(minutes=30), **extra):
    with database.begin() as conn:
        conn.execute(
            SyncState.__table__.insert().values(
                user_id=user_id,
                service=service,
                interval_seconds=int(interval.total_seconds()),
                last_synced_at=datetime.now(UTC) - synced_ago,
                **extra,
            )
        )


def put_inbox(database, key, received_ago: timedelta, status="pending", attempts=0, error=None, **extra):
    with database.begin() as conn:
        conn.execute(
            WebhookInbox.__table__.insert().values(
                source="google_calendar",
                user_id="u1",
                dedup_key=key,
                payload={},
                received_at=datetime.now(UTC) - received_ago,
                status=status,
                attempts=attempts,
                error=error,
                **extra,
            )
        )


def put_channel(database, channel_id, user_id, kind, expires_in: timedelta):
    with database.begin() as conn:
        conn.execute(
            WatchChannel.__table__.insert().values(
                id=channel_id,
                user_id=user_id,
                service=kind,
                status="active",
                expires_at=datetime.now(UTC) + expires_in,
            )
        )


def history(user_id, service, finished_at, error):
    return {
        "user_id": user_id,
        "service": service,
        "finished_at": finished_at,
        "ok": error is None,
        "change_count": 0,
        "error": error,
    }


def run_checks(defs, instance) -> dict[dg.AssetCheckKey, dg.AssetCheckEvaluation]:
    result = defs.resolve_job_def("health_checks").execute_in_process(instance=instance, raise_on_error=False)
    assert result.success  # a failing check is a result, not a failed run
    return {evaluation.asset_check_key: evaluation for evaluation in result.get_asset_check_evaluations()}


def value(evaluation, key):
    return evaluation.metadata[key].value


def test_freshness_fails_on_stale_users_names_them_and_passes_once_they_sync(
    push_resources, database, cipher, monkeypatch
):
    defs = build_defs(push_resources)
    add_users(database, cipher, "u1", "u2", "u3")
    put_state(database, "u1", "calendar", timedelta(minutes=5))
    put_state(
        database, "u2", "calendar", timedelta(hours=2), consecutive_failures=3, last_error="HttpError 500: x"
    )
    put_state(database, "u3", "calendar", timedelta(minutes=59))  # under twice its interval
    with dg.instance_for_test() as instance:
        checks = run_checks(defs, instance)
        stale = checks[CALENDAR_FRESHNESS]
        assert not stale.passed
        assert stale.severity == dg.AssetCheckSeverity.ERROR
        assert (value(stale, "users"), value(stale, "stale_users")) == (3, 1)
        assert value(stale, "stale_share") == pytest.approx(0.3333)
        assert "| u2 | calendar | 2.0h ago | 30m | 3 | HttpError 500: x |" in value(stale, "worst_users")
        assert "backfill" in stale.description and "calendar_events" in stale.description
        # Every user was connected just now and never synced drive: not stale yet.
        assert checks[DRIVE_FRESHNESS].passed

        # Allowed a larger share, the same fleet passes (the stale user is still counted).
        monkeypatch.setenv("SUNNY_FRESHNESS_MAX_STALE_SHARE", "0.5")
        allowed = run_checks(defs, instance)[CALENDAR_FRESHNESS]
        assert allowed.passed and value(allowed, "stale_users") == 1
        monkeypatch.delenv("SUNNY_FRESHNESS_MAX_STALE_SHARE")

        # A user without a usable grant is not the sync's to catch up.
        with database.begin() as conn:
            conn.execute(
                update(GoogleConnection).where(GoogleConnection.user_id == "u2").values(status="needs_reauth")
            )
        assert run_checks(defs, instance)[CALENDAR_FRESHNESS].passed
        with database.begin() as conn:
            conn.execute(
                update(GoogleConnection).where(GoogleConnection.user_id == "u2").values(status="active")
            )
            conn.execute(
                update(SyncState).where(SyncState.user_id == "u2").values(last_synced_at=datetime.now(UTC))
            )
        assert run_checks(defs, instance)[CALENDAR_FRESHNESS].passed


def test_inbox_checks_fail_on_an_old_pending_row_and_a_dead_letter_until_replayed(
    push_resources, database, cipher
):
    defs = build_defs(push_resources)
    add_users(database, cipher, "u1")
    put_inbox(database, "fresh", timedelta(minutes=1))
    put_inbox(
        database, "retrying", timedelta(hours=1), status="failed", attempts=2, error="HttpError 503: later"
    )
    with dg.instance_for_test() as instance:
        checks = run_checks(defs, instance)
        assert checks[PENDING].passed and checks[DEAD_LETTERS].passed

        put_inbox(database, "old", timedelta(minutes=10))
        put_inbox(
            database,
            "dead",
            timedelta(hours=2),
            status="failed",
            attempts=MAX_ATTEMPTS,
            error="SyncLockBusy: u1",
        )
        checks = run_checks(defs, instance)
        pending = checks[PENDING]
        assert not pending.passed and pending.severity == dg.AssetCheckSeverity.ERROR
        assert value(pending, "old_pending_rows") == 1
        assert "webhook_inbox_sensor" in pending.description
        dead = checks[DEAD_LETTERS]
        assert not dead.passed
        assert value(dead, "dead_letters") == 1
        assert value(dead, "by_reason") == {"SyncLockBusy": 1}
        assert "replay_inbox" in dead.description

        # What the description says to do: replay them from the launchpad.
        replay = defs.resolve_job_def("replay_inbox").execute_in_process(
            instance=instance,
            run_config={"ops": {"replay_failed_inbox_rows": {"config": {"source": "google_calendar"}}}},
        )
        assert replay.success
        checks = run_checks(defs, instance)
        assert checks[DEAD_LETTERS].passed
        # The old row and the replayed one are pending: the inbox sensor's runs answer them.
        with database.begin() as conn:
            conn.execute(update(WebhookInbox).values(status="done", processed_at=datetime.now(UTC)))
        assert run_checks(defs, instance)[PENDING].passed


def test_channel_check_fails_on_a_missing_an_overdue_and_an_expired_channel(
    push_resources, resources, database, cipher
):
    defs = build_defs(push_resources)
    add_users(database, cipher, "u1", "u2")
    put_state(database, "u1", "drive", timedelta(minutes=1))  # u2 never synced drive: no channel wanted
    with dg.instance_for_test() as instance:
        missing = run_checks(defs, instance)[DRIVE_CHANNELS]
        assert not missing.passed and missing.severity == dg.AssetCheckSeverity.ERROR
        assert value(missing, "users_without_live_channel") == 1
        assert "| u1 | drive |" in value(missing, "users_without_live_channel_table")
        assert "drive_watch_channels" in missing.description

        put_channel(database, "c1", "u1", "drive", timedelta(days=5))
        assert run_checks(defs, instance)[DRIVE_CHANNELS].passed

        # In the 2-day margin: normal until the daily renewal; past it, overdue.
        with database.begin() as conn:
            conn.execute(update(WatchChannel).values(expires_at=datetime.now(UTC) + timedelta(hours=40)))
        margin = run_checks(defs, instance)[DRIVE_CHANNELS]
        assert margin.passed and value(margin, "channels_in_renewal_margin") == 1
        with database.begin() as conn:
            conn.execute(update(WatchChannel).values(expires_at=datetime.now(UTC) + timedelta(hours=12)))
        overdue = run_checks(defs, instance)[DRIVE_CHANNELS]
        assert not overdue.passed and value(overdue, "channels_overdue") == 1

        # Expired yet still recorded active: the user has no live channel.
        with database.begin() as conn:
            conn.execute(update(WatchChannel).values(expires_at=datetime.now(UTC) - timedelta(minutes=1)))
        expired = run_checks(defs, instance)[DRIVE_CHANNELS]
        assert not expired.passed and value(expired, "users_without_live_channel") == 1

        # Without push configured there is nothing to hold.
        off = run_checks(build_defs(resources), instance)[DRIVE_CHANNELS]
        assert off.passed and value(off, "push") == "off"


def test_fleet_health_metadata_on_a_prepared_database(push_resources, database, cipher):
    defs = build_defs(push_resources)
    add_users(database, cipher, "u1", "u2", "u3", "u4", "u5")
    put_state(database, "u1", "calendar", timedelta(minutes=10))
    put_state(
        database, "u2", "calendar", timedelta(hours=2), consecutive_failures=2, last_error="HttpError 500: a"
    )
    now = datetime.now(UTC)
    with database.begin() as conn:
        conn.execute(
            update(GoogleConnection).where(GoogleConnection.user_id == "u3").values(status="needs_reauth")
        )
        conn.execute(
            update(GoogleConnection).where(GoogleConnection.user_id == "u4").values(status="revoked")
        )
        conn.execute(update(User).where(User.id == "u5").values(status="deleted"))
        conn.execute(
            SyncHistory.__table__.insert(),
            [
                history("u1", "calendar", now, None),
                history("u1", "drive", now, None),
                history("u2", "calendar", now, "HttpError 500: a"),
                history("u2", "calendar", now - timedelta(hours=3), "Old: b"),
            ],
        )
    for i in range(3):
        put_inbox(
            database,
            f"done{i}",
            timedelta(minutes=20),
            status="done",
            processed_at=now - timedelta(minutes=5),
        )
    put_inbox(
        database, "done-long-ago", timedelta(hours=3), status="done", processed_at=now - timedelta(hours=2)
    )
    put_inbox(database, "p1", timedelta(minutes=2))
    put_inbox(database, "p2", timedelta(seconds=10))
    put_inbox(database, "f1", timedelta(minutes=30), status="failed", attempts=MAX_ATTEMPTS, error="Boom: x")
    with dg.instance_for_test() as instance:
        run_checks(defs, instance)  # one run before: runs per hour counts it and the fleet's own
        result = defs.resolve_job_def("fleet_health_job").execute_in_process(instance=instance)
        assert result.success
        [materialization] = result.asset_materializations_for_node("fleet_health")
        metadata = {key: entry.value for key, entry in materialization.metadata.items()}
    # Usable grants: u1, u2. u2 last synced 2 h ago, u1 10 min ago.
    assert metadata["calendar_users"] == 2
    assert metadata["calendar_stale_users"] == 1
    assert metadata["calendar_failing_users"] == 1
    assert metadata["calendar_lag_max_seconds"] == pytest.approx(7200, abs=60)
    assert metadata["calendar_lag_p50_seconds"] == pytest.approx((7200 + 600) / 2, abs=60)
    assert metadata["calendar_lag_p95_seconds"] == pytest.approx(600 + 0.95 * 6600, abs=60)
    assert metadata["drive_users"] == 2 and metadata["drive_stale_users"] == 0  # connected just now
    assert isinstance(materialization.metadata["calendar_lag_p95_seconds"], dg.FloatMetadataValue)
    assert {k: metadata[k] for k in metadata if k.startswith("users_")} == {
        "users_active": 2,
        "users_needs_reauth": 1,
        "users_revoked": 1,
        "users_disconnected": 0,
        "users_no_grant": 0,
        "users_deleted": 1,
    }
    assert (metadata["inbox_pending"], metadata["inbox_failed"], metadata["inbox_done_last_hour"]) == (
        2,
        1,
        3,
    )
    assert metadata["inbox_oldest_pending_seconds"] == pytest.approx(120, abs=30)
    assert (metadata["syncs_ok_last_hour"], metadata["syncs_failed_last_hour"]) == (2, 1)
    assert metadata["sync_failures_by_reason_last_hour"] == {"HttpError 500": 1}
    assert metadata["failing_users_by_reason"] == {"HttpError 500": 1}
    assert metadata["runs_last_hour"] == 2
    assert metadata["runs_failed_last_hour"] == 0
    assert "| u2 | calendar | 2.0h ago |" in metadata["worst_users"]
    assert "u1 |" not in metadata["worst_users"]


def test_the_schedules_request_the_checks_and_the_fleet_every_five_minutes(resources):
    defs = build_defs(resources)
    with dg.instance_for_test() as instance:
        for schedule, job in (
            ("health_checks_schedule", "health_checks"),
            ("fleet_health_schedule", "fleet_health_job"),
        ):
            definition = defs.get_schedule_def(schedule)
            assert definition.cron_schedule == "*/5 * * * *"
            assert definition.default_status == dg.DefaultScheduleStatus.RUNNING
            [request] = evaluate_schedule(defs, schedule, instance, resources).run_requests
            assert defs.get_schedule_def(schedule).job_name == job
            assert request.run_key is None


def test_after_a_calendar_sync_the_sensor_runs_the_calendar_and_inbox_checks(resources, connected_users):
    defs = build_defs(resources)
    keys = [grant["id"] for grant in connected_users]
    sensor = "health_checks_after_runs_sensor"
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", keys)
        first = evaluate_sensor(defs, sensor, instance, resources)
        assert not first.run_requests and first.cursor
        assert not evaluate_sensor(defs, sensor, instance, resources, cursor=first.cursor).run_requests

        assert run_range(defs, instance, "calendar_sync", keys, Trigger.FIRST_SYNC).success
        tick = evaluate_sensor(defs, sensor, instance, resources, cursor=first.cursor)
        [request] = tick.run_requests
        assert set(request.asset_check_keys) == {CALENDAR_FRESHNESS, CALENDAR_CHANNELS, PENDING, DEAD_LETTERS}
        assert request.run_key == f"health_checks_after_runs:{tick.cursor}"
        # The runs it saw are behind its cursor now.
        assert not evaluate_sensor(defs, sensor, instance, resources, cursor=tick.cursor).run_requests

        # The requested checks, as the daemon launches them: the synced users are fresh.
        job = defs.resolve_job_def(request.job_name or "health_checks")
        subset = job.get_subset(asset_check_selection=set(request.asset_check_keys))
        result = subset.execute_in_process(instance=instance)
        evaluations = {e.asset_check_key: e for e in result.get_asset_check_evaluations()}
        assert set(evaluations) == set(request.asset_check_keys)
        fresh = evaluations[CALENDAR_FRESHNESS]
        assert fresh.passed and value(fresh, "users") == len(keys) and value(fresh, "stale_users") == 0


def test_a_new_per_user_domain_gets_its_freshness_check_with_no_line_in_health(database, cipher):
    from sunny_pipelines_tests.per_user.test_protocol import Probe, probe_domain

    defs = build_defs({"database": database, "cipher": cipher}, domains=[probe_domain(Probe())])
    checks = defs.resolve_asset_graph().asset_check_keys
    assert dg.AssetCheckKey(dg.AssetKey("probe_items"), "sync_freshness") in checks
    add_users(database, cipher, "u1")
    with dg.instance_for_test() as instance:
        [fleet] = (
            defs.resolve_job_def("fleet_health_job")
            .execute_in_process(instance=instance)
            .asset_materializations_for_node("fleet_health")
        )
    assert fleet.metadata["probe_users"].value == 1
