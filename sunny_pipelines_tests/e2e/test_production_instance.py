"""The push path end to end on the production layout (deploy/): Dagster's runs, event log and
schedules in PostgreSQL through dagster-postgres (deploy/dagster.yaml, a database of its own
created and dropped by the test), the code location served by `dagster api grpc`, and a daemon
whose workspace (deploy/workspace.yaml) points at that server. A change made through the Google
client reaches `calendar_events` by the push path alone."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
import pytest
from sqlalchemy import create_engine, text

from sunny_pipelines.calendar.channels import ensure_calendar_channels
from sunny_pipelines.calendar.sync import sync_user_calendars
from sunny_pipelines.pools import POOL_LIMITS
from sunny_pipelines_tests.e2e.test_push_path import inbox_rows, insert_event, wait_for_event
from sunny_pipelines_tests.stack import PROJECT_ROOT, production_stack, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(
    tmp_path, monkeypatch, database, cipher, sandbox, connected_users, receiver, push_google, dagster_pg_url
):
    """Ada synced with live channels, pool limits applied as a deploy does, and the production
    layout running."""
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_pg_url)
    ada = connected_users[0]
    sync_user_calendars(push_google.session(ada["id"]), database, ada["id"])
    ensure_calendar_channels(push_google.session(ada["id"]), database, ada["id"], receiver)
    layout = production_stack(tmp_path, database, cipher, sandbox, connected_users, receiver, dagster_pg_url)
    with layout as s:
        subprocess.run(
            [sys.executable, "-m", "sunny_pipelines.pools", "apply"],
            env={**os.environ, "DAGSTER_HOME": str(s.home)},
            cwd=PROJECT_ROOT,
            check=True,
            capture_output=True,
        )
        yield s


def test_push_path_on_the_postgres_instance_with_a_grpc_code_server(
    database, sandbox, connected_users, stack, dagster_pg_url
):
    ada = connected_users[0]
    created = insert_event(sandbox, ada, "Pushed through production")
    assert wait_for_event(database, stack, ada["id"], created["id"]) == "https://meet.google.com/abc-defg-hij"
    wait_for(
        lambda: inbox_rows(database) and all(r.status == "done" for r in inbox_rows(database)), timeout=30
    )
    run_ids = {row.claimed_by for row in inbox_rows(database)}

    with dg.DagsterInstance.from_config(str(stack.home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        wait_for(
            lambda: all(instance.get_run_by_id(r).status == dg.DagsterRunStatus.SUCCESS for r in run_ids),
            timeout=30,
        )
        for run_id in run_ids:
            run = instance.get_run_by_id(run_id)
            assert run.tags["dagster/sensor_name"] == "webhook_inbox_sensor"
            # Launched through the workspace's gRPC server, not a code location loaded in-process.
            location = run.remote_job_origin.repository_origin.code_location_origin
            assert type(location).__name__ == "GrpcServerCodeLocationOrigin"
            assert location.location_name == "sunny_pipelines"
        limits = {limit.name: limit.limit for limit in instance.event_log_storage.get_pool_limits()}
        assert limits == dict(POOL_LIMITS)

    # The same facts, read from the PostgreSQL database itself.
    engine = create_engine(dagster_pg_url)
    with engine.connect() as conn:
        stored_runs = conn.execute(
            text("SELECT count(*) FROM runs WHERE run_id = ANY(:ids) AND status = 'SUCCESS'"),
            {"ids": list(run_ids)},
        ).scalar_one()
        materializations = conn.execute(
            text(
                "SELECT count(*) FROM event_logs WHERE run_id = ANY(:ids) "
                "AND dagster_event_type = 'ASSET_MATERIALIZATION' AND partition = :user"
            ),
            {"ids": list(run_ids), "user": ada["id"]},
        ).scalar_one()
        sensor_ticks = conn.execute(
            text("SELECT count(*) FROM job_ticks WHERE selector_id IS NOT NULL OR job_origin_id IS NOT NULL")
        ).scalar_one()
    engine.dispose()
    assert stored_runs == len(run_ids)
    assert materializations >= 1
    assert sensor_ticks > 0
