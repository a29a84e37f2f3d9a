"""Crashes at each point of a user's sync, with every part real: the run is a `dagster job
execute` process, held at the crash point by a database lock the test takes, and killed with
SIGKILL. Dagster's run monitoring would then mark the run failed; the test does that step itself
(`report_run_failed`). Nothing is lost: the next run syncs what the dead one did not, or, after
the last attempt, the row ends `failed` where an operator sees it. Also: two runs of one user at
once never bring back an event deleted in between."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import select, text

from sunny_pipelines.calendar.sync import sync_user_calendars
from sunny_pipelines.db.engine import PROJECT_ROOT
from sunny_pipelines.db.models import CalendarEvent, UserCalendar, WebhookInbox
from sunny_pipelines.definitions import build_defs
from sunny_pipelines.inbox.rows import MAX_ATTEMPTS
from sunny_pipelines.partitions import TRIGGER_TAG, range_tags
from sunny_pipelines.vocabulary import Trigger
from sunny_pipelines_tests.calendar.helpers import stored_rows, truth_rows
from sunny_pipelines_tests.google_clients import calendar_client
from sunny_pipelines_tests.inbox.helpers import inbox_row, notify
from sunny_pipelines_tests.runs import evaluate_sensor, execute
from sunny_pipelines_tests.stack import app_env, dagster_command, dagster_home, wait_for

pytestmark = pytest.mark.e2e

INBOX_TAGS = {TRIGGER_TAG: Trigger.INBOX.value}


@pytest.fixture
def ada(google, database, connected_users) -> dict:
    user = connected_users[0]
    sync_user_calendars(google.session(user["id"]), database, user["id"])
    return user


@pytest.fixture
def home(tmp_path, connected_users):
    return dagster_home(tmp_path / "dagster_home", [u["id"] for u in connected_users])


@pytest.fixture
def env(home, database, cipher, sandbox) -> dict[str, str]:
    return app_env(home=home, database_url=database.url, token_key=cipher.key, sandbox_url=sandbox.base_url)


@pytest.fixture
def start_run(env, tmp_path):
    """Starts `calendar_sync` for one user as its own process (an inbox run); whatever a failed
    test leaves running is killed at teardown."""
    processes: list[subprocess.Popen] = []

    def start(user_id: str) -> subprocess.Popen:
        tags = json.dumps({**range_tags(user_id, user_id), **INBOX_TAGS})
        command = dagster_command(
            "dagster",
            "job",
            "execute",
            "-m",
            "sunny_pipelines.definitions",
            "-j",
            "calendar_sync",
            "--tags",
            tags,
        )
        with open(tmp_path / f"run-{len(processes)}.log", "wb") as log:
            process = subprocess.Popen(
                command,
                env=env,
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def kill(process: subprocess.Popen, home) -> None:
    """SIGKILL the run's process, then do what the daemon's run monitoring does for a dead run:
    mark it failed and give back the pool slot it held."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs(limit=1)
        instance.report_run_failed(run, "run worker killed (test)")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)


def stored(database, user_id: str, event_id: str):
    with database.begin() as conn:
        return conn.execute(
            select(CalendarEvent.deleted_at).where(
                CalendarEvent.user_id == user_id, CalendarEvent.event_id == event_id
            )
        ).first()


def insert_event(sandbox, user: dict, calendar_id: str, summary: str) -> str:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    body = {
        "summary": summary,
        "start": {"dateTime": start.isoformat()},
        "end": {"dateTime": (start + timedelta(minutes=30)).isoformat()},
    }
    return calendar_client(sandbox, user).events().insert(calendarId=calendar_id, body=body).execute()["id"]


def recover(resources, home, database, row_id: int) -> None:
    """What the daemon does next: the inbox sensor requests the row again, a run answers it."""
    defs = build_defs(resources)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        tick = evaluate_sensor(defs, "webhook_inbox_sensor", instance, resources)
        [request] = tick.run_requests
        execute(defs, instance, request)


def test_killed_after_the_data_commit_before_the_rows_finish(
    ada, start_run, home, resources, database, sandbox
):
    event_id = insert_event(sandbox, ada, "primary", "Committed, then killed")
    row_id = notify(database, ada["id"])
    sandbox.world.inject_fault("latency", user_email=ada["email"], count=20, latency_ms=700)
    run = start_run(ada["id"])
    blocker = database.engine.connect()
    try:
        wait_for(lambda: inbox_row(database, row_id).claimed_by, timeout=60)
        # Hold the row: the run's data commits, then it stalls finishing the row, and dies there.
        blocker.execute(select(WebhookInbox.id).where(WebhookInbox.id == row_id).with_for_update())
        wait_for(lambda: stored(database, ada["id"], event_id), timeout=60)
        kill(run, home)
    finally:
        blocker.rollback()
        blocker.close()
    dead = inbox_row(database, row_id)
    assert (dead.status, dead.attempts) == ("pending", 1)
    sandbox.world.clear_faults()
    recover(resources, home, database, row_id)
    assert (inbox_row(database, row_id).status, inbox_row(database, row_id).attempts) == ("done", 2)
    assert stored_rows(database, ada["id"]) == truth_rows(sandbox, ada)


def test_killed_midway_through_a_users_calendars(ada, start_run, home, resources, database, sandbox):
    with database.begin() as conn:
        writable = (
            conn.execute(
                select(UserCalendar.calendar_id)
                .where(UserCalendar.user_id == ada["id"], UserCalendar.access_role.in_(["owner", "writer"]))
                .order_by(UserCalendar.calendar_id)
            )
            .scalars()
            .all()
        )
    first, second = writable[:2]
    early = insert_event(sandbox, ada, first, "Synced before the crash")
    late = insert_event(sandbox, ada, second, "Not synced before the crash")
    row_id = notify(database, ada["id"])
    blocker = database.engine.connect()
    try:
        # The second calendar cannot commit its page: the run is stuck between two calendars.
        blocker.execute(
            select(UserCalendar.calendar_id)
            .where(UserCalendar.user_id == ada["id"], UserCalendar.calendar_id == second)
            .with_for_update()
        )
        run = start_run(ada["id"])
        wait_for(lambda: stored(database, ada["id"], early), timeout=60)
        kill(run, home)
    finally:
        blocker.rollback()
        blocker.close()
    assert stored(database, ada["id"], late) is None
    recover(resources, home, database, row_id)
    assert stored(database, ada["id"], late) is not None
    assert (inbox_row(database, row_id).status, inbox_row(database, row_id).attempts) == ("done", 2)
    assert stored_rows(database, ada["id"]) == truth_rows(sandbox, ada)


def test_killed_on_every_attempt_the_row_ends_failed(ada, start_run, home, resources, database, sandbox):
    row_id = notify(database, ada["id"])
    holder = database.engine.connect()  # a sync that never ends: every run stalls after claiming
    holder.execute(
        text("SELECT pg_advisory_lock(hashtextextended(:k, 0))"), {"k": f"sunny-sync:calendar:{ada['id']}"}
    )
    holder.commit()
    try:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            run = start_run(ada["id"])
            wait_for(lambda a=attempt: inbox_row(database, row_id).attempts == a, timeout=60)
            kill(run, home)
    finally:
        holder.execute(text("SELECT pg_advisory_unlock_all()"))
        holder.close()
    assert (inbox_row(database, row_id).status, inbox_row(database, row_id).attempts) == (
        "pending",
        MAX_ATTEMPTS,
    )
    recover(resources, home, database, row_id)
    dead = inbox_row(database, row_id)
    assert (dead.status, dead.attempts) == ("failed", MAX_ATTEMPTS)
    assert f"gave up after {MAX_ATTEMPTS} attempts" in dead.error


def test_two_runs_of_one_user_never_bring_back_a_deleted_event(
    ada, start_run, home, resources, database, sandbox
):
    event_id = insert_event(sandbox, ada, "primary", "Deleted while a slow sync runs")
    first_row = notify(database, ada["id"])
    # The first run lists slowly; meanwhile the event is deleted and a second run starts.
    sandbox.world.inject_fault("latency", user_email=ada["email"], count=6, latency_ms=1000)
    slow = start_run(ada["id"])
    wait_for(lambda: inbox_row(database, first_row).claimed_by, timeout=60)
    calendar_client(sandbox, ada).events().delete(calendarId="primary", eventId=event_id).execute()
    second_row = notify(database, ada["id"])
    defs = build_defs(resources)
    results = {}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        tags = {**range_tags(ada["id"], ada["id"]), **INBOX_TAGS}
        second = threading.Thread(
            target=lambda: results.update(
                run=defs.resolve_job_def("calendar_sync").execute_in_process(instance=instance, tags=tags)
            )
        )
        second.start()
        assert slow.wait(timeout=120) == 0
        second.join(timeout=120)
        assert results["run"].success
    deleted = stored(database, ada["id"], event_id)
    assert deleted is not None and deleted.deleted_at is not None
    assert stored_rows(database, ada["id"]) == truth_rows(sandbox, ada)
    first, second_row_state = inbox_row(database, first_row), inbox_row(database, second_row)
    assert (first.status, first.attempts) == ("done", 1)
    assert (second_row_state.status, second_row_state.attempts) == ("done", 1)
    assert first.claimed_by != second_row_state.claimed_by == results["run"].run_id
