"""Run retention against real Dagster instances (SQLite, and PostgreSQL as in production): old
runs go with their event log rows; runs holding a partition's latest materialization (or its
latest failed attempt) stay, so what the asset pages show does not change; queued and running
runs are never touched; and over repeated sync cycles the event log stops growing."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import create_engine, text

from sunny_pipelines.definitions import build_defs
from sunny_pipelines.housekeeping.retention import (
    cutoff,
    delete_old_runs,
    split_runs,
    unmaterialized_attempts,
)
from sunny_pipelines.vocabulary import Trigger
from sunny_pipelines_tests.runs import run_range
from sunny_pipelines_tests.stack import deploy_dagster_home

CALENDAR_EVENTS = dg.AssetKey("calendar_events")
AGE_ZERO = {"ops": {"delete_old_dagster_runs": {"config": {"max_age_days": 0}}}}
DRIVE_FILES = dg.AssetKey("drive_files")


def test_split_and_cutoff():
    assert split_runs(["a", "b", "c", "d"], {"b", "d", "x"}) == (["a", "c"], ["b", "d"])
    now = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    assert cutoff(now, 14) == now - timedelta(days=14)
    assert cutoff(now, 0) == now
    with pytest.raises(ValueError, match="0 or more"):
        cutoff(now, -1)


def partition_status(instance: dg.DagsterInstance, key: dg.AssetKey) -> tuple:
    """What the asset page shows per partition: materialized, latest materialization (its event
    and run), and partitions whose latest attempt failed."""
    latest = instance.get_latest_storage_id_by_partition(key, dg.DagsterEventType.ASSET_MATERIALIZATION)
    failed = unmaterialized_attempts(instance, key)
    return instance.get_materialized_partitions(key), dict(latest), dict(failed)


def retention_metadata(result: dg.ExecuteInProcessResult) -> dict:
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return {k: v.value for k, v in output.event_specific_data.metadata.items()}


def test_old_runs_are_deleted_and_runs_holding_latest_materializations_kept(
    resources, sandbox, connected_users
):
    defs = build_defs(resources)
    keys = [u["id"] for u in connected_users]
    third = connected_users[2]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", keys)

        def sync(job: str, users: list[str]) -> str:
            return run_range(defs, instance, job, users, Trigger.BACKFILL).run_id

        superseded = sync("calendar_sync", keys)  # every partition materialized again below
        holds_third = sync("calendar_sync", keys)  # the third user's latest materialization
        holds_first_two = sync("calendar_sync", keys[:2])
        # The third user's next sync fails (Google answers 400): the partition shows failed.
        sandbox.world.inject_fault("server_error", user_email=third["email"], count=100, status=400)
        failed_third = run_range(defs, instance, "calendar_sync", keys[2:], Trigger.BACKFILL)
        sandbox.world.clear_faults()
        assert not failed_third.success
        # Never deleted whatever their age: a run not yet launched and a running one.
        queued = instance.add_run(
            dg.DagsterRun(job_name="calendar_sync", status=dg.DagsterRunStatus.NOT_STARTED)
        )
        started = instance.add_run(dg.DagsterRun(job_name="drive_sync", status=dg.DagsterRunStatus.STARTED))
        time.sleep(0.01)
        older_than = datetime.now(UTC)
        young_superseded = sync("drive_sync", keys)  # younger than the cutoff: not a candidate
        young_latest = sync("drive_sync", keys)

        before = {key: partition_status(instance, key) for key in (CALENDAR_EVENTS, DRIVE_FILES)}
        assert before[CALENDAR_EVENTS][0] == set(keys)
        assert set(before[CALENDAR_EVENTS][2]) == {third["id"]}

        outcome = delete_old_runs(instance, older_than, batch_size=2)

        assert (outcome.runs_deleted, outcome.runs_kept_latest) == (1, 3)
        assert instance.get_run_by_id(superseded) is None
        assert list(instance.all_logs(superseded)) == []
        remaining = {record.dagster_run.run_id for record in instance.get_run_records()}
        assert remaining == {
            holds_third,
            holds_first_two,
            failed_third.run_id,
            queued.run_id,
            started.run_id,
            young_superseded,
            young_latest,
        }
        assert {key: partition_status(instance, key) for key in before} == before

        # The job, with age 0: only the superseded young Drive run goes now.
        result = defs.resolve_job_def("run_retention_job").execute_in_process(
            instance=instance, run_config=AGE_ZERO
        )
        assert result.success
        assert retention_metadata(result) | {"created_before": None} == {
            "runs_deleted": 1,
            "runs_kept_latest": 4,
            "created_before": None,
        }
        assert instance.get_run_by_id(young_superseded) is None
        assert instance.get_run_by_id(young_latest) is not None
        assert instance.get_run_by_id(queued.run_id) and instance.get_run_by_id(started.run_id)
        assert {key: partition_status(instance, key) for key in before} == before


def test_retention_schedule_is_daily_and_running(resources):
    schedule = build_defs(resources).get_schedule_def("run_retention_schedule")
    assert schedule.cron_schedule == "0 3 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "run_retention_job"


def test_event_log_stays_flat_over_repeated_sync_cycles(
    tmp_path, monkeypatch, dagster_pg_url, resources, sandbox, connected_users
):
    """Sync cycles of every user (calendar and Drive), each followed by housekeeping with age 0,
    on the production instance (deploy/dagster.yaml, PostgreSQL storage): after the first cycles
    the event log holds the same number of rows, whereas it grows by every run without it."""
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_pg_url)
    defs = build_defs(resources)
    keys = [u["id"] for u in connected_users]
    home = deploy_dagster_home(tmp_path / "dagster_home", keys)
    engine = create_engine(dagster_pg_url)

    def rows() -> int:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM event_logs")).scalar_one()

    counts, grown, metadata = [], [], []
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for _ in range(5):
            start = rows()
            for job in ("calendar_sync", "drive_sync"):
                assert run_range(defs, instance, job, keys, Trigger.BACKFILL).success
            grown.append(rows() - start)
            result = defs.resolve_job_def("run_retention_job").execute_in_process(
                instance=instance,
                run_config=AGE_ZERO,
            )
            assert result.success
            metadata.append(retention_metadata(result))
            counts.append(rows())
            assert instance.get_materialized_partitions(CALENDAR_EVENTS) == set(keys)
            assert instance.get_materialized_partitions(DRIVE_FILES) == set(keys)
    engine.dispose()
    print(f"\nevent_logs rows after each cycle's housekeeping: {counts}")
    print(f"event_logs rows each cycle's syncs wrote: {grown}")

    assert min(grown) > 0
    # From the second cycle on, each housekeeping run deletes the previous cycle's syncs and
    # housekeeping run: the table holds one cycle's worth.
    assert counts[2:] == [counts[1]] * (len(counts) - 2), counts
    assert counts[-1] < counts[0] + sum(grown[1:])
    for cycle in metadata[1:]:
        assert cycle["runs_deleted"] == 3 and cycle["runs_kept_latest"] == 2
        assert cycle["event_log_rows_after"] < cycle["event_log_rows_before"]
