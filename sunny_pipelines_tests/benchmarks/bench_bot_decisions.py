"""Benchmark: the bot decision for N users whose calendars share meetings, a batched Dagster run vs
a plain loop, like with like; Attendee calls per bot created and duplicate bots.

    python -m sunny_pipelines_tests.benchmarks.bench_bot_decisions [--users 200] [--events 20] [--samples 3]

Setup (not timed): a sandbox seeded with N users, whose seeded meetings invite one another, the
users connected and every calendar synced into a fresh database. Each sample then starts a fresh
sandbox process with the same seed (an Attendee with no bot yet) and empties the meetings tables,
and runs one side, each its own process with the same environment and concurrency
(``SUNNY_USER_CONCURRENCY``):

- **loop**: ``python -m sunny_pipelines_tests.benchmarks.bench_bot_decisions loop USER...``, a
  thread pool calling ``schedule_user_bots`` (what the asset calls per user);
- **dagster**: ``dagster job execute -j bot_scheduling`` over all users (``sunny/trigger=upstream``,
  as after a calendar sync).

Each side then runs a second time with nothing changed (the cost of a decision that books
nothing). Warm-up first, alternating order, median and spread, ratio of medians. Figures per
sample: bots created, Attendee calls (the sandbox's counter) per bot created, duplicate bots
(live bots at Attendee sharing a deduplication key; must be 0), meetings with more than one
participant. Written to ``--json`` (default ``.sunny/bench/bot_decisions-<time>.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select, text

from sunny_pipelines.calendar.sync import sync_user_calendars
from sunny_pipelines.db.models import MeetingParticipant
from sunny_pipelines.meetings.bots import schedule_user_bots
from sunny_pipelines.resources.attendee import AttendeeResource
from sunny_pipelines.resources.cipher import TokenCipher
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines.vocabulary import Trigger
from sunny_pipelines_tests.benchmarks.common import (
    compare_sides,
    connect_users,
    dagster_job_command,
    fetch_grants,
    fresh_database,
    new_token_key,
    run_process,
    sampled_sides,
    sandbox_process,
    user_concurrency,
    write_json,
)
from sunny_pipelines_tests.stack import app_env, dagster_home

MODULE = "sunny_pipelines_tests.benchmarks.bench_bot_decisions"
SIDES = ("loop", "dagster")
LABELS = {"wall_seconds": "first decisions", "unchanged_wall_seconds": "nothing changed"}
MEETING_TABLES = ("meeting_transcripts", "meeting_bots", "meeting_participants", "meetings", "webhook_inbox")


def loop_main(argv: list[str]) -> int:
    """The loop process: ``schedule_user_bots`` for every user on a thread pool."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE} loop")
    parser.add_argument("--users-file", required=True)
    args = parser.parse_args(argv)
    user_ids = [line for line in Path(args.users_file).read_text().split() if line]
    database = DatabaseResource(url=os.environ["SUNNY_DATABASE_URL"])
    attendee = AttendeeResource(base_url=os.environ["SUNNY_ATTENDEE_URL"])
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=user_concurrency()) as pool:
        results = list(pool.map(lambda uid: schedule_user_bots(database, attendee.client(), uid), user_ids))
    print(json.dumps({"seconds": time.perf_counter() - started, "created": sum(r.created for r in results)}))
    return 0


def attendee_calls(sandbox: str) -> int:
    response = requests.get(f"{sandbox}/sandbox/requests", params={"path_prefix": "/api/v1"}, timeout=30)
    response.raise_for_status()
    return int(response.json()["count"])


def attendee_bots(sandbox: str) -> list[dict[str, Any]]:
    response = requests.get(f"{sandbox}/sandbox/attendee/bots", timeout=60)
    response.raise_for_status()
    body = response.json()
    return body["bots"] if isinstance(body, dict) else body


def run_side(side: str, env: dict[str, str], users_file: Path, user_ids: list[str]) -> float:
    if side == "loop":
        command = [sys.executable, "-m", MODULE, "loop", "--users-file", str(users_file)]
    else:
        command = dagster_job_command("bot_scheduling", user_ids, Trigger.UPSTREAM)
    wall, _ = run_process(command, env, f"{side} bot decisions")
    return wall


def sample(
    side: str,
    workdir: Path,
    database: DatabaseResource,
    base_env: dict[str, str],
    args: Any,
    users: list[str],
) -> dict[str, Any]:
    """One side on a fresh Attendee: the first decisions, then the same with nothing changed."""
    with database.begin() as conn:
        conn.execute(text("TRUNCATE " + ", ".join(MEETING_TABLES) + " RESTART IDENTITY CASCADE"))
    with sandbox_process(workdir, users=args.users, events_per_user=args.events, seed=args.seed) as sandbox:
        env = {**base_env, "SUNNY_SANDBOX_URL": sandbox, "SUNNY_ATTENDEE_URL": sandbox}
        users_file = workdir / "users.txt"
        first = run_side(side, env, users_file, users)
        calls_first = attendee_calls(sandbox)
        again = run_side(side, env, users_file, users)
        calls_again = attendee_calls(sandbox) - calls_first
        bots = [b for b in attendee_bots(sandbox) if not b.get("deleted")]
    keys = Counter(b["deduplication_key"] for b in bots)
    with database.begin() as conn:
        per_meeting = conn.execute(
            select(func.count()).select_from(MeetingParticipant).group_by(MeetingParticipant.meeting_id)
        ).scalars()
        shared = sum(1 for n in per_meeting if n > 1)
    return {
        "wall_seconds": first,
        "unchanged_wall_seconds": again,
        "bots_created": len(bots),
        "attendee_calls": calls_first,
        "attendee_calls_per_bot": round(calls_first / len(bots), 3) if bots else None,
        "attendee_calls_unchanged": calls_again,
        "duplicate_bots": sum(n - 1 for n in keys.values() if n > 1),
        "shared_meetings": shared,
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "loop":
        return loop_main(argv[1:])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--events", type=int, default=20, help="calendar events seeded per user")
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", help="where to write the figures (default .sunny/bench/...)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="sunny-bench-bots-"))
    url = fresh_database()
    key = new_token_key()
    database = DatabaseResource(url=url)
    # Setup: the users' calendars, synced once (the decisions read them from the database).
    with sandbox_process(workdir, users=args.users, events_per_user=args.events, seed=args.seed) as sandbox:
        users = connect_users(database, key, fetch_grants(sandbox))
        google = GoogleResource(database=database, cipher=TokenCipher(key=key), sandbox_url=sandbox)
        with ThreadPoolExecutor(max_workers=user_concurrency()) as pool:
            list(pool.map(lambda uid: sync_user_calendars(google.session(uid), database, uid), users))
    (workdir / "users.txt").write_text("\n".join(users) + "\n")
    env = app_env(
        home=dagster_home(workdir / "dagster_home", users), database_url=url, token_key=key, sandbox_url=""
    )
    print(
        f"{len(users)} users x {args.events} events, concurrency {user_concurrency()}, logs {workdir}",
        flush=True,
    )
    runs = sampled_sides(
        SIDES, args.samples, args.warmup, lambda side: sample(side, workdir, database, env, args, users)
    )
    figures: dict[str, Any] = {
        "config": {"users": len(users), "events_per_user": args.events, "concurrency": user_concurrency()},
        "samples": runs,
        **compare_sides(runs, LABELS),
    }
    every = [r for side in SIDES for r in runs[side]]
    print(
        f"bots created per sample: {sorted({r['bots_created'] for r in every})}; meetings shared by "
        f"several users: {sorted({r['shared_meetings'] for r in every})}; Attendee calls per bot "
        f"created: {sorted({r['attendee_calls_per_bot'] for r in every})}; with nothing changed: "
        f"{sorted({r['attendee_calls_unchanged'] for r in every})} calls; duplicate bots: "
        f"{sum(r['duplicate_bots'] for r in every)}"
    )
    write_json(args.json, "bot_decisions", figures)
    return 1 if any(r["duplicate_bots"] for r in every) else 0


if __name__ == "__main__":
    raise SystemExit(main())
