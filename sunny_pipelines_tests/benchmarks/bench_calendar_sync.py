"""Benchmark: full calendar sync of N sandbox users, a batched Dagster run vs a plain loop,
like with like.

    python -m sunny_pipelines_tests.benchmarks.bench_calendar_sync [--users 50] [--events 20] [--samples 3]

Three processes per sample, as in production: the sandbox (``python -m sunny_pipelines.sandbox``)
runs in its own process for the whole benchmark; each side is its own process started from
scratch, with the same environment:

- **loop**: ``python -m sunny_pipelines_tests.benchmarks.bench_calendar_sync loop USER...``, a
  thread pool of ``SUNNY_USER_CONCURRENCY`` workers calling the same per-user function the asset
  calls, ``sync_user_calendars(google.session(user_id), database, user_id)``;
- **dagster**: ``dagster job execute -m sunny_pipelines.definitions -j calendar_sync --tags
  <range tags>``, whose asset works on ``SUNNY_USER_CONCURRENCY`` users at once.

Both are timed from process start to process exit (interpreter start and imports included, as an
operator or a run launcher pays them); the time inside the sync itself is recorded as well. A
warm-up pass of each side comes first and is not counted; samples then alternate (loop, dagster,
dagster, loop, ...), and every sample starts from the same state: the synced tables are emptied
(users and their grants stay). Prints median and spread per side and the ratio of medians, and
writes them to ``--json`` (default ``.sunny/bench/calendar_sync-<time>.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from sunny_pipelines.calendar.sync import sync_user_calendars
from sunny_pipelines.db.grants import store_google_grants
from sunny_pipelines.db.models import CalendarEvent
from sunny_pipelines.partitions import range_tags
from sunny_pipelines.resources.cipher import TokenCipher
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines_tests.benchmarks.common import (
    DEFAULT_USER_CONCURRENCY,
    PROJECT_ROOT,
    alternating_orders,
    fetch_grants,
    format_summary,
    fresh_database,
    new_token_key,
    ratio,
    sandbox_process,
    summarize,
    write_json,
)
from sunny_pipelines_tests.stack import dagster_home

MODULE = "sunny_pipelines_tests.benchmarks.bench_calendar_sync"
SIDES = ("loop", "dagster")
# Tables that hold the users and their grants: kept between samples. Everything else is emptied.
KEPT_TABLES = {"users", "google_connections", "alembic_version"}


# --- the plain loop: its own process --------------------------------------------------------


def user_concurrency() -> int:
    return int(os.environ.get("SUNNY_USER_CONCURRENCY", str(DEFAULT_USER_CONCURRENCY)))


def sync_users(
    google: GoogleResource, database: DatabaseResource, user_ids: list[str], concurrency: int
) -> dict[str, Any]:
    """Sync ``user_ids`` on a pool of ``concurrency`` threads, as the batched asset does.

    One user's failure does not stop the others; failures are returned by user.
    """

    def one(user_id: str) -> None:
        sync_user_calendars(google.session(user_id), database, user_id)

    failures: dict[str, str] = {}
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(user_ids) or 1))) as pool:
        futures = {pool.submit(one, user_id): user_id for user_id in user_ids}
        for future in as_completed(futures):
            try:
                future.result()
            except Exception as exc:
                failures[futures[future]] = f"{type(exc).__name__}: {exc}"
                traceback.print_exception(exc, file=sys.stderr, limit=-3)
    return {
        "users": len(user_ids),
        "failed": failures,
        "concurrency": concurrency,
        "seconds": time.perf_counter() - started,
    }


def loop_main(argv: list[str]) -> int:
    """Entry point of the loop process. Reads the same environment as the code location:
    ``SUNNY_DATABASE_URL``, ``SUNNY_TOKEN_KEY``, ``SUNNY_SANDBOX_URL``, ``SUNNY_USER_CONCURRENCY``.
    Prints one JSON line with the result; exits 1 if any user failed."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE} loop")
    parser.add_argument("user_ids", nargs="*", help="users to sync")
    parser.add_argument("--users-file", help="file with one user id per line (added to user_ids)")
    parser.add_argument("--concurrency", type=int, default=None, help="default: SUNNY_USER_CONCURRENCY or 8")
    args = parser.parse_args(argv)
    user_ids = list(args.user_ids)
    if args.users_file:
        user_ids += [line.strip() for line in Path(args.users_file).read_text().splitlines() if line.strip()]
    database = DatabaseResource(url=os.environ["SUNNY_DATABASE_URL"])
    cipher = TokenCipher(key=os.environ["SUNNY_TOKEN_KEY"])
    google = GoogleResource(database=database, cipher=cipher, sandbox_url=os.environ["SUNNY_SANDBOX_URL"])
    result = sync_users(google, database, user_ids, args.concurrency or user_concurrency())
    print(json.dumps(result), flush=True)
    return 1 if result["failed"] else 0


# --- the parent: sandbox process, samples, figures ------------------------------------------


def reset_synced_tables(database: DatabaseResource) -> None:
    """Back to the state right after the users connected: only users and grants remain."""
    with database.begin() as conn:
        tables = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        ).scalars()
        emptied = [name for name in tables if name not in KEPT_TABLES]
        if emptied:
            quoted = ", ".join(f'"{name}"' for name in emptied)
            conn.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY"))


def count_events(database: DatabaseResource) -> int:
    with database.begin() as conn:
        return conn.execute(select(func.count()).select_from(CalendarEvent)).scalar_one()


def run_process(command: list[str], env: dict[str, str], what: str) -> tuple[float, str]:
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        sys.stderr.write(output[-4000:])
        raise SystemExit(f"{what} failed with exit code {completed.returncode}")
    return elapsed, output


def run_loop(env: dict[str, str], users_file: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", MODULE, "loop", "--users-file", str(users_file)]
    wall, output = run_process(command, env, "plain loop")
    result = json.loads(next(line for line in reversed(output.splitlines()) if line.startswith("{")))
    return {"wall_seconds": wall, "sync_seconds": result["seconds"]}


_MATERIALIZED = re.compile(r"users materialized.*? in ([0-9.]+)\s*s")


def run_dagster(env: dict[str, str], user_ids: list[str]) -> dict[str, Any]:
    tags = json.dumps(range_tags(user_ids[0], user_ids[-1]))
    command = [
        sys.executable, "-m", "dagster", "job", "execute",
        "-m", "sunny_pipelines.definitions", "-j", "calendar_sync", "--tags", tags,
    ]  # fmt: skip
    wall, output = run_process(command, env, "dagster run")
    # The asset logs its own duration; best effort, the wall time is the figure compared.
    found = _MATERIALIZED.search(output)
    return {"wall_seconds": wall, "sync_seconds": float(found.group(1)) if found else None}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "loop":
        return loop_main(argv[1:])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=50, help="sandbox users synced by each side")
    parser.add_argument("--events", type=int, default=20, help="events seeded per user")
    parser.add_argument("--samples", type=int, default=3, help="counted samples per side (>= 3)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=user_concurrency(),
        help="users at once on both sides (SUNNY_USER_CONCURRENCY, default 8)",
    )
    parser.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--seed", type=int, default=42, help="seed of the sandbox world")
    parser.add_argument("--json", help="where to write the figures (default .sunny/bench/...)")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="sunny-bench-calendar-"))
    url = fresh_database()
    key = new_token_key()
    database = DatabaseResource(url=url)
    with sandbox_process(workdir, users=args.users, events_per_user=args.events, seed=args.seed) as sandbox:
        grants = fetch_grants(sandbox)
        with database.begin() as conn:
            store_google_grants(conn, TokenCipher(key=key), grants)
        user_ids = [grant["id"] for grant in grants]
        users_file = workdir / "users.txt"
        users_file.write_text("\n".join(user_ids) + "\n")
        env = {
            **os.environ,
            "DAGSTER_HOME": str(dagster_home(workdir / "dagster_home", user_ids)),
            "SUNNY_DATABASE_URL": url,
            "SUNNY_TOKEN_KEY": key,
            "SUNNY_SANDBOX_URL": sandbox,
            "SUNNY_WEBHOOK_BASE_URL": "",  # no push channels: both sides do the same sync only
            "SUNNY_USER_CONCURRENCY": str(args.concurrency),
            "PYTHONUNBUFFERED": "1",
        }

        def sample(side: str) -> dict[str, Any]:
            reset_synced_tables(database)
            result = run_loop(env, users_file) if side == "loop" else run_dagster(env, user_ids)
            result["rows"] = count_events(database)
            return result

        print(
            f"{len(user_ids)} users x {args.events} events, concurrency {args.concurrency}, "
            f"sandbox {sandbox}, logs {workdir}",
            flush=True,
        )
        warmup: dict[str, Any] = {}
        if args.warmup:
            for side in SIDES:
                warmup[side] = sample(side)
                print(f"  warm-up {side}: {warmup[side]['wall_seconds']:.2f} s", flush=True)
        results: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
        for i, order in enumerate(alternating_orders(SIDES, args.samples)):
            for side in order:
                result = sample(side)
                results[side].append(result)
                sync = f", sync {result['sync_seconds']:.2f} s" if result["sync_seconds"] else ""
                print(
                    f"  sample {i + 1} {side}: {result['wall_seconds']:.2f} s{sync}, {result['rows']} rows",
                    flush=True,
                )

    rows = {r["rows"] for side in SIDES for r in results[side]} | {r["rows"] for r in warmup.values()}
    summaries = {side: summarize([r["wall_seconds"] for r in results[side]]) for side in SIDES}
    sync_summaries = {
        side: summarize([r["sync_seconds"] for r in results[side] if r["sync_seconds"] is not None])
        for side in SIDES
    }
    figures = {
        "config": {
            "users": len(user_ids),
            "events_per_user": args.events,
            "samples": args.samples,
            "concurrency": args.concurrency,
            "warmup": args.warmup,
            "seed": args.seed,
        },
        "rows_synced": sorted(rows),
        "wall_seconds": summaries,
        "sync_seconds": sync_summaries,
        "ratio_of_medians_dagster_over_loop": ratio(
            summaries["dagster"]["median"], summaries["loop"]["median"]
        ),
        "warmup": warmup,
        "samples": results,
    }
    print(f"users {len(user_ids)}, events per user {args.events}, rows per sync {sorted(rows)}")
    print(format_summary("plain loop (own process, thread pool)", summaries["loop"]))
    print(format_summary("batched Dagster run (dagster job execute)", summaries["dagster"]))
    for side in SIDES:
        if sync_summaries[side].get("n"):
            print(format_summary(f"  of which inside the sync ({side})", sync_summaries[side]))
    print(f"ratio of medians dagster / loop: {figures['ratio_of_medians_dagster_over_loop']:.2f}x")
    write_json(args.json, "calendar_sync", figures)
    return 0 if len(rows) == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
