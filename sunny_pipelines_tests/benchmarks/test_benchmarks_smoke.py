"""Fast smoke tests of the benchmarks, run by default so that they cannot rot: the statistics
and JSON helpers, the sync benchmark's plain-loop process on 2 users of each service, the upsert
benchmark's round, the real Google client changes the push benchmark makes, and each benchmark
mode run whole but tiny (2 users, 1 sample, no warm-up) in its own scratch database. Real
PostgreSQL, real sandbox."""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from sunny_pipelines.db.models import CalendarEvent, GoogleConnection, User
from sunny_pipelines.db.upserts import upsert
from sunny_pipelines_tests.benchmarks import bench_google_sync, bench_push_path, bench_upsert
from sunny_pipelines_tests.benchmarks.common import (
    PROJECT_ROOT,
    alternating_orders,
    latency_summary,
    percentile,
    ratio,
    reset_synced_tables,
    summarize,
    write_json,
)
from sunny_pipelines_tests.google_clients import google_client


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


@pytest.mark.parametrize("service_name", sorted(bench_google_sync.SERVICES))
def test_plain_loop_process_syncs_the_users_it_is_given(
    service_name, database, cipher, sandbox, connected_users
):
    service = bench_google_sync.SERVICES[service_name]
    chosen = [grant["id"] for grant in connected_users[:2]]
    env = {
        **os.environ,
        "SUNNY_DATABASE_URL": database.url,
        "SUNNY_TOKEN_KEY": cipher.key,
        "SUNNY_SANDBOX_URL": sandbox.base_url,
        "SUNNY_USER_CONCURRENCY": "2",
    }
    completed = subprocess.run(
        [sys.executable, "-m", bench_google_sync.MODULE, "loop", "--service", service_name, *chosen],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert (result["users"], result["failed"], result["concurrency"]) == (2, {}, 2)
    rows: Any = service.rows_of
    with database.begin() as conn:
        per_user = dict(conn.execute(select(rows.user_id, func.count()).group_by(rows.user_id)).all())
    assert set(per_user) == set(chosen) and all(n > 0 for n in per_user.values())

    # Between samples only the synced data goes; users and grants stay.
    reset_synced_tables(database)
    assert bench_google_sync.count_rows(database, service) == 0
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


def _read_back(client: Any, service_name: str, object_id: str) -> str:
    """The label of the object a push benchmark change made, read back through the API."""
    if service_name == "calendar":
        return client.events().get(calendarId="primary", eventId=object_id).execute()["summary"]
    if service_name == "drive":
        return client.files().get(fileId=object_id, fields="name").execute()["name"]
    headers = client.users().messages().get(userId="me", id=object_id, format="metadata").execute()
    return next(h["value"] for h in headers["payload"]["headers"] if h["name"].lower() == "subject")


@pytest.mark.parametrize("service_name", sorted(bench_push_path.SERVICES))
def test_push_benchmark_changes_go_through_the_real_google_client(
    service_name, database, sandbox, connected_users
):
    service = bench_push_path.SERVICES[service_name]
    grant = connected_users[0]
    client = google_client(sandbox.base_url, grant, service.api)
    object_id = service.make_change(client, "smoke change", random.Random(1))
    assert _read_back(client, service_name, object_id) == "smoke change"
    assert not service.row_committed(database, grant["id"], object_id)
    assert service.rows_labelled(database, "smoke") == 0
    assert bench_push_path.inbox_counts(database, 0) == {}


# --- each benchmark mode, whole but tiny ----------------------------------------------------------

# (module, arguments, what its output must show)
TINY_RUNS = {
    "google_sync": (
        bench_google_sync.MODULE,
        ["--users", "2", "--samples", "1", "--no-warmup"],
        [
            rf"{name} ratio of medians dagster / loop: [0-9.]+x"
            for name in [*bench_google_sync.SERVICES, "total"]
        ],
    ),
    **{
        f"push_{name}": (
            "sunny_pipelines_tests.benchmarks.bench_push_path",
            ["--service", name, "--users", "2", "--changes", "2", "--max-pause", "0.5", "--burst", "0"],
            [rf"{name} single changes: 2 ", r"p50 [0-9.]+ s, p95 [0-9.]+ s, p99 [0-9.]+ s, max [0-9.]+ s"],
        )
        for name in ("drive", "gmail")
    },
    "classification": (
        "sunny_pipelines_tests.benchmarks.bench_classification",
        ["--users", "2", "--samples", "1", "--no-warmup"],
        [r"ratio of medians dagster / loop: [0-9.]+x", r"second run: \[0\] calls"],
    ),
    "bot_decisions": (
        "sunny_pipelines_tests.benchmarks.bench_bot_decisions",
        ["--users", "2", "--samples", "1", "--no-warmup"],
        [r"ratio of medians dagster / loop: [0-9.]+x", r"duplicate bots: 0"],
    ),
    "fleet": (
        "sunny_pipelines_tests.benchmarks.bench_fleet",
        [
            "--users",
            "2",
            "--events",
            "1",
            "--cycle-minutes",
            "0.3",
            "--baseline-changes",
            "1",
            "--change-every",
            "4",
        ],
        [
            r"gmail\s+2 of\s+2 \(100.0%\)",
            r"change -> row \(calendar\): idle p50 [0-9.]+ s",
            r"event_logs rows: [0-9,]+ at the cycle's start",
            r"CPU in the cycle: [0-9,]+ s",
        ],
    ),
}


def _run_tiny(name: str, database_url: str, tmp_path: Any) -> tuple[str, subprocess.CompletedProcess]:
    module, args, _ = TINY_RUNS[name]
    # Each run drops and recreates its own scratch database, never the benchmarks' own.
    url = make_url(database_url)
    scratch = url.set(database=f"{url.database}_{name}").render_as_string(hide_password=False)
    env = {**os.environ, "SUNNY_BENCH_DATABASE_URL": scratch}
    command = [sys.executable, "-m", module, *args, "--json", str(tmp_path / f"{name}.json")]
    completed = subprocess.run(
        command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600
    )
    return name, completed


def test_every_benchmark_mode_runs_tiny_and_prints_its_figures(database_url, tmp_path):
    # The runs are mostly process start-up and waiting on sensors: side by side they take about
    # as long as the slowest.
    with ThreadPoolExecutor(len(TINY_RUNS)) as pool:
        results = list(pool.map(lambda name: _run_tiny(name, database_url, tmp_path), TINY_RUNS))
    for name, completed in results:
        output = completed.stdout + completed.stderr
        assert completed.returncode == 0, f"{name}:\n{output[-3000:]}"
        for pattern in TINY_RUNS[name][2]:
            assert re.search(pattern, completed.stdout), (
                f"{name} did not print {pattern!r}:\n{output[-3000:]}"
            )
        assert json.loads((tmp_path / f"{name}.json").read_text())["config"]["users"] == 2
