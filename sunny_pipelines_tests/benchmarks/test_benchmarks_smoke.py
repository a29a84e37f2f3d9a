"""Fast smoke tests of the benchmarks, run by default so that they cannot rot: the statistics
and JSON helpers, the calendar benchmark's plain-loop process on 2 users, the upsert benchmark's
round, and the real Google client the push benchmark drives. Real PostgreSQL, real sandbox."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys

from sqlalchemy import func, select

from sunny_pipelines.db.models import CalendarEvent, GoogleConnection, User
from sunny_pipelines.db.upserts import upsert
from sunny_pipelines_tests.benchmarks import bench_calendar_sync, bench_push_path, bench_upsert
from sunny_pipelines_tests.benchmarks.common import (
    PROJECT_ROOT,
    alternating_orders,
    latency_summary,
    percentile,
    ratio,
    summarize,
    write_json,
)
from sunny_pipelines_tests.google_clients import calendar_client


def test_alternating_orders_put_each_side_first_in_turn():
    assert alternating_orders(["loop", "dagster"], 4) == [
        ["loop", "dagster"],
        ["dagster", "loop"],
        ["loop", "dagster"],
        ["dagster", "loop"],
    ]


def test_statistics():
    summary = summarize([3.0, 1.0, 2.0, 10.0])
    assert (summary["n"], summary["median"], summary["min"], summary["max"]) == (4, 2.5, 1.0, 10.0)
    assert summary["q1"] <= summary["median"] <= summary["q3"]
    assert summarize([4.0])["q1"] == summarize([4.0])["q3"] == 4.0
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99)) == (50, 95, 99)
    assert percentile([7.0], 0.99) == 7.0
    latency = latency_summary([0.5, 2.0, 1.0])
    assert (latency["p50"], latency["max"], latency["n"]) == (1.0, 2.0, 3)
    assert ratio(3.0, 2.0) == 1.5 and math.isnan(ratio(1.0, 0.0))


def test_write_json(tmp_path):
    path = write_json(tmp_path / "out" / "b.json", "smoke", {"wall_seconds": summarize([1.0, 2.0])})
    document = json.loads(path.read_text())
    assert document["benchmark"] == "smoke"
    assert document["wall_seconds"]["median"] == 1.5
    assert document["machine"]["cpus"] >= 1


def test_plain_loop_process_syncs_the_users_it_is_given(database, cipher, sandbox, connected_users):
    chosen = [grant["id"] for grant in connected_users[:2]]
    env = {
        **os.environ,
        "SUNNY_DATABASE_URL": database.url,
        "SUNNY_TOKEN_KEY": cipher.key,
        "SUNNY_SANDBOX_URL": sandbox.base_url,
        "SUNNY_USER_CONCURRENCY": "2",
    }
    completed = subprocess.run(
        [sys.executable, "-m", bench_calendar_sync.MODULE, "loop", *chosen],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert (result["users"], result["failed"], result["concurrency"]) == (2, {}, 2)
    with database.begin() as conn:
        per_user = dict(
            conn.execute(select(CalendarEvent.user_id, func.count()).group_by(CalendarEvent.user_id)).all()
        )
    assert set(per_user) == set(chosen) and all(n > 0 for n in per_user.values())

    # Between samples only the synced data goes; users and grants stay.
    bench_calendar_sync.reset_synced_tables(database)
    assert bench_calendar_sync.count_events(database) == 0
    with database.begin() as conn:
        assert conn.execute(select(func.count()).select_from(User)).scalar_one() == len(connected_users)
        assert conn.execute(select(func.count()).select_from(GoogleConnection)).scalar_one() == len(
            connected_users
        )


def test_upsert_round_updates_every_row_with_both_methods(database):
    bench_upsert.prepare(database)
    first, second = bench_upsert.event_rows(40, 1), bench_upsert.event_rows(40, 2)
    for method in bench_upsert.METHODS:
        rates = bench_upsert.one_round(database, method, first, second)
        assert rates["insert"] > 0 and rates["update"] > 0
        assert bench_upsert.updated_rows(database) == 40
    # Both methods leave the same rows behind.
    with database.begin() as conn:
        upsert(conn, CalendarEvent.__table__, second, bench_upsert.KEY)
    assert bench_upsert.updated_rows(database) == 40


def test_push_benchmark_changes_go_through_the_real_google_client(database, sandbox, connected_users):
    grant = connected_users[0]
    body = bench_push_path.event_body(random.Random(1), "smoke change")
    events = calendar_client(sandbox.base_url, grant).events()
    created = events.insert(calendarId="primary", body=body).execute()
    assert events.get(calendarId="primary", eventId=created["id"]).execute()["summary"] == "smoke change"
    assert not bench_push_path.row_committed(database, grant["id"], created["id"])
    assert bench_push_path.inbox_counts(database, 0) == {}
