"""Benchmark: classifying the documents and emails of N users (about 2,000 at 200 users) through
the sandbox's OpenAI-compatible API, a batched Dagster run vs a plain loop, like with like;
documents per second, model calls, and the calls the content hash saves on a second run.

    python -m sunny_pipelines_tests.benchmarks.bench_classification [--users 200] [--samples 3]

Setup (not timed): a sandbox process seeded with N users, connected, their Drive and Gmail
synced. Each sample empties `document_classifications` and `ai_usage` and runs one side, each its
own process with the same environment and concurrency (``SUNNY_USER_CONCURRENCY``):

- **loop**: ``python -m sunny_pipelines_tests.benchmarks.bench_classification loop``, a thread
  pool calling ``classify_user_documents`` (what the asset calls per user);
- **dagster**: ``dagster job execute -j classification`` over all users (``sunny/trigger=backfill``).

Then the same side once more with nothing changed (every document skipped by its content hash).
Warm-up first, alternating order, median and spread, ratio of medians. Written to ``--json``
(default ``.sunny/bench/classification-<time>.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select, text

from sunny_pipelines.ai.classify import classify_user_documents
from sunny_pipelines.db.models import DocumentClassification
from sunny_pipelines.drive.sync import sync_user_drive
from sunny_pipelines.gmail.sync import sync_user_mail
from sunny_pipelines.resources.ai import AIResource
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

MODULE = "sunny_pipelines_tests.benchmarks.bench_classification"
SIDES = ("loop", "dagster")
LABELS = {"wall_seconds": "first classification", "unchanged_wall_seconds": "nothing changed"}


def loop_main(argv: list[str]) -> int:
    """The loop process: ``classify_user_documents`` for every user on a thread pool."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE} loop")
    parser.add_argument("--users-file", required=True)
    user_ids = Path(parser.parse_args(argv).users_file).read_text().split()
    database = DatabaseResource(url=os.environ["SUNNY_DATABASE_URL"])
    ai = AIResource(base_url=os.environ["SUNNY_AI_BASE_URL"])
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=user_concurrency()) as pool:
        results = list(pool.map(lambda uid: classify_user_documents(database, ai, uid), user_ids))
    print(
        json.dumps(
            {"seconds": time.perf_counter() - started, "classified": sum(r.classified for r in results)}
        )
    )
    return 0


def model_calls(sandbox: str) -> int:
    response = requests.get(
        f"{sandbox}/sandbox/requests", params={"path_prefix": "/v1/chat/completions"}, timeout=30
    )
    response.raise_for_status()
    return int(response.json()["count"])


def classified(database: DatabaseResource) -> int:
    with database.begin() as conn:
        return conn.execute(
            select(func.count()).where(DocumentClassification.status == "classified")
        ).scalar_one()


def run_side(side: str, env: dict[str, str], users_file: Path, users: list[str]) -> float:
    if side == "loop":
        command = [sys.executable, "-m", MODULE, "loop", "--users-file", str(users_file)]
    else:
        command = dagster_job_command("classification", users, Trigger.BACKFILL)
    wall, _ = run_process(command, env, f"{side} classification")
    return wall


def sample(
    side: str, database: DatabaseResource, env: dict[str, str], sandbox: str, files: Path, users: list[str]
) -> dict[str, Any]:
    with database.begin() as conn:
        conn.execute(text("TRUNCATE document_classifications, ai_usage RESTART IDENTITY"))
    before = model_calls(sandbox)
    wall = run_side(side, env, files, users)
    calls = model_calls(sandbox) - before
    documents = classified(database)
    again = run_side(side, env, files, users)
    calls_again = model_calls(sandbox) - before - calls
    return {
        "wall_seconds": wall,
        "documents_classified": documents,
        "documents_per_second": round(documents / wall, 1),
        "model_calls": calls,
        "unchanged_wall_seconds": again,
        "model_calls_unchanged": calls_again,
        "calls_saved_by_content_hash": documents - calls_again,
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "loop":
        return loop_main(argv[1:])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--events", type=int, default=20, help="seed size per user (scales files and mail)")
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", help="where to write the figures (default .sunny/bench/...)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="sunny-bench-ai-"))
    url = fresh_database()
    key = new_token_key()
    database = DatabaseResource(url=url)
    with sandbox_process(workdir, users=args.users, events_per_user=args.events, seed=args.seed) as sandbox:
        users = connect_users(database, key, fetch_grants(sandbox))
        google = GoogleResource(database=database, cipher=TokenCipher(key=key), sandbox_url=sandbox)

        def sync(uid: str) -> None:
            session = google.session(uid)
            sync_user_drive(session, database, uid)
            sync_user_mail(session, database, uid)

        with ThreadPoolExecutor(max_workers=user_concurrency()) as pool:
            list(pool.map(sync, users))
        files = workdir / "users.txt"
        files.write_text("\n".join(users) + "\n")
        home = dagster_home(workdir / "dagster_home", users)
        env = app_env(home=home, database_url=url, token_key=key, sandbox_url=sandbox)
        print(f"{len(users)} users, concurrency {user_concurrency()}, logs {workdir}", flush=True)
        runs = sampled_sides(
            SIDES, args.samples, args.warmup, lambda side: sample(side, database, env, sandbox, files, users)
        )
    figures: dict[str, Any] = {
        "config": {"users": len(users), "concurrency": user_concurrency()},
        "samples": runs,
        **compare_sides(runs, LABELS),
    }
    every = [r for side in SIDES for r in runs[side]]
    print(
        f"documents classified: {sorted({r['documents_classified'] for r in every})}; documents per "
        f"second: {sorted(r['documents_per_second'] for r in every)}; model calls: "
        f"{sorted({r['model_calls'] for r in every})}; second run: "
        f"{sorted({r['model_calls_unchanged'] for r in every})} calls, "
        f"{sorted({r['calls_saved_by_content_hash'] for r in every})} saved by the content hash"
    )
    write_json(args.json, "classification", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
