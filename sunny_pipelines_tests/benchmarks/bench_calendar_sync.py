"""Benchmark: calendar sync of many sandbox users, batched Dagster run vs a plain loop.

    python -m sunny_pipelines_tests.benchmarks.bench_calendar_sync [--users 200] [--events 50]

Both sides do the same full first sync of every user against the same sandbox, in the same
benchmark run. The Dagster run is launched as its own process the way an operator launches one
(`dagster job execute` with the partition-range tags). Also prints the set-based upsert rate
against row-by-row inserts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import dagster as dg
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from sunny_pipelines.calendar.sync import sync_user_calendars
from sunny_pipelines.db.grants import store_google_grants
from sunny_pipelines.db.models import CalendarEvent
from sunny_pipelines.db.upserts import upsert
from sunny_pipelines.partitions import range_tags
from sunny_pipelines.resources.cipher import TokenCipher
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines.sandbox.server import SandboxServer
from sunny_pipelines_tests.benchmarks.common import fresh_database, new_token_key


def reset_sync_data(database: DatabaseResource) -> None:
    with database.begin() as conn:
        conn.execute(text("TRUNCATE calendar_events, user_calendars, sync_state"))


def count_events(database: DatabaseResource) -> int:
    with database.begin() as conn:
        return conn.execute(select(func.count()).select_from(CalendarEvent)).scalar_one()


def plain_loop(google: GoogleResource, database: DatabaseResource, user_ids: list[str]) -> float:
    started = time.perf_counter()
    for user_id in user_ids:
        sync_user_calendars(google.session(user_id), database, user_id)
    return time.perf_counter() - started


def dagster_run(env: dict[str, str], user_ids: list[str]) -> float:
    dagster_home = env["DAGSTER_HOME"]
    with dg.DagsterInstance.from_config(dagster_home) as instance:
        instance.add_dynamic_partitions("users", user_ids)
    tags = json.dumps(range_tags(user_ids[0], user_ids[-1]))
    command = [
        sys.executable, "-m", "dagster", "job", "execute",
        "-m", "sunny_pipelines.definitions", "-j", "calendar_sync", "--tags", tags,
    ]  # fmt: skip
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        sys.stderr.write(completed.stdout[-3000:] + completed.stderr[-3000:])
        raise SystemExit(f"dagster run failed with exit code {completed.returncode}")
    return elapsed


def upsert_rates(database: DatabaseResource, rows: int) -> tuple[float, float]:
    """(set-based rows/s, row-by-row rows/s) writing the same calendar rows."""
    batch = [
        {
            "user_id": "bench",
            "calendar_id": "c",
            "event_id": f"e{i}",
            "status": "confirmed",
            "summary": f"s{i}",
        }
        for i in range(rows)
    ]
    with database.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, email, timezone, status)"
                " VALUES ('bench', 'bench@example.com', 'UTC', 'active') ON CONFLICT DO NOTHING"
            )
        )
        conn.execute(text("DELETE FROM calendar_events WHERE user_id = 'bench'"))
    started = time.perf_counter()
    with database.begin() as conn:
        upsert(conn, CalendarEvent.__table__, batch, ["user_id", "calendar_id", "event_id"])
    bulk = rows / (time.perf_counter() - started)
    with database.begin() as conn:
        conn.execute(text("DELETE FROM calendar_events WHERE user_id = 'bench'"))
    started = time.perf_counter()
    with database.begin() as conn:
        for row in batch:
            stmt = pg_insert(CalendarEvent.__table__).values(row)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["user_id", "calendar_id", "event_id"],
                    set_={"status": stmt.excluded.status, "summary": stmt.excluded.summary},
                )
            )
    single = rows / (time.perf_counter() - started)
    with database.begin() as conn:
        conn.execute(text("DELETE FROM calendar_events WHERE user_id = 'bench'"))
        conn.execute(text("DELETE FROM users WHERE id = 'bench'"))
    return bulk, single


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--upsert-rows", type=int, default=5000)
    args = parser.parse_args()

    url = fresh_database()
    key = new_token_key()
    database = DatabaseResource(url=url)
    cipher = TokenCipher(key=key)
    sandbox = SandboxServer(port=0, users=args.users, events_per_user=args.events, seed=42).start()
    try:
        grants = sandbox.world.list_users()
        with database.begin() as conn:
            store_google_grants(conn, cipher, grants)
        user_ids = [g["id"] for g in grants]
        google = GoogleResource(database=database, cipher=cipher, sandbox_url=sandbox.base_url)

        loop_seconds = plain_loop(google, database, user_ids)
        loop_events = count_events(database)
        print(f"plain loop done: {loop_seconds:.1f} s, {loop_events} rows", flush=True)
        reset_sync_data(database)

        with tempfile.TemporaryDirectory() as dagster_home:
            with open(os.path.join(dagster_home, "dagster.yaml"), "w") as handle:
                handle.write("telemetry:\n  enabled: false\n")
            env = {
                **os.environ,
                "DAGSTER_HOME": dagster_home,
                "SUNNY_DATABASE_URL": url,
                "SUNNY_TOKEN_KEY": key,
                "SUNNY_SANDBOX_URL": sandbox.base_url,
            }
            run_seconds = dagster_run(env, user_ids)
        run_events = count_events(database)
        print(f"dagster run done: {run_seconds:.1f} s, {run_events} rows", flush=True)
        bulk_rate, single_rate = upsert_rates(database, args.upsert_rows)
    finally:
        sandbox.stop()

    print(
        f"users: {len(user_ids)}, events per user (seeded): {args.events}, "
        f"rows synced: loop {loop_events}, run {run_events}"
    )
    print(f"plain loop (sequential, same sync function): {loop_seconds:.1f} s")
    print(f"batched Dagster run (own process, range tags): {run_seconds:.1f} s")
    print(f"ratio dagster / loop: {run_seconds / loop_seconds:.2f}x (target <= 2.00x)")
    print(f"upsert: set-based {bulk_rate:,.0f} rows/s, row-by-row {single_rate:,.0f} rows/s, "
          f"ratio {bulk_rate / single_rate:.1f}x")  # fmt: skip
    return 0 if loop_events == run_events else 1


if __name__ == "__main__":
    raise SystemExit(main())
