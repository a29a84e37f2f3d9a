"""Benchmark: full sync of N sandbox users for each Google service (Calendar, Drive, Gmail), a
batched Dagster run vs a plain loop, like with like.

    python -m sunny_pipelines_tests.benchmarks.bench_google_sync [--services calendar,drive,gmail]
        [--users 200] [--events 20] [--samples 3]

The sandbox (``python -m sunny_pipelines.sandbox``, ``--events`` per user; Drive and Gmail seed
``max(8, events/2)`` files and ``max(12, events/2)`` messages per user) runs in its own process
for the whole benchmark. Per service, each side is its own process started from scratch, with
the same environment (no push channels or Gmail watch on either side):

- **loop**: ``python -m sunny_pipelines_tests.benchmarks.bench_google_sync loop --service S
  USER...``, a thread pool of ``SUNNY_USER_CONCURRENCY`` workers calling the same per-user
  functions the asset calls (calendar: ``sync_user_calendars``; drive: ``sync_user_drive``;
  gmail: ``sync_user_mail`` then ``process_pending_emails``);
- **dagster**: ``dagster job execute -m sunny_pipelines.definitions -j <job> --tags <range of all
  users + sunny/trigger=first_sync>``: one batched run whose asset works on
  ``SUNNY_USER_CONCURRENCY`` users at once (jobs ``calendar_sync``, ``drive_sync``,
  ``email_sync``).

Both are timed from process start to exit (interpreter start and imports included, as an
operator or a run launcher pays them); the time inside the sync is recorded as well. A warm-up
of each side of each service comes first and is not counted; samples then alternate the sides'
order (loop first, then dagster first, ...), and every sample starts from the same state: the
synced tables are emptied (users and their grants stay). Prints, per service and in total (the
sum of the services' times in a sample), the median and spread of each side and the ratio of the
medians dagster / loop, and writes them to ``--json`` (default
``.sunny/bench/google_sync-<time>.json``). Target: ratio <= 1.5 at 200 users.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from sunny_pipelines.calendar.sync import sync_user_calendars
from sunny_pipelines.db.models import Base, CalendarEvent, DriveFile, Email
from sunny_pipelines.drive.sync import sync_user_drive
from sunny_pipelines.gmail.process import process_pending_emails
from sunny_pipelines.gmail.sync import sync_user_mail
from sunny_pipelines.resources.cipher import TokenCipher
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines.vocabulary import Trigger
from sunny_pipelines_tests.benchmarks.common import (
    alternating_orders,
    connect_users,
    dagster_job_command,
    fetch_grants,
    format_summary,
    fresh_database,
    new_token_key,
    ratio,
    reset_synced_tables,
    run_process,
    sandbox_process,
    summarize,
    user_concurrency,
    write_json,
)
from sunny_pipelines_tests.stack import app_env, dagster_home

MODULE = "sunny_pipelines_tests.benchmarks.bench_google_sync"
SIDES = ("loop", "dagster")

UserSyncFunction = Callable[[GoogleResource, DatabaseResource, str], object]


def _sync_gmail(google: GoogleResource, database: DatabaseResource, user_id: str) -> None:
    # The `emails` asset processes what it synced in the same step; so does the loop.
    sync_user_mail(google.session(user_id), database, user_id)
    process_pending_emails(database, user_id)


@dataclass(frozen=True)
class ServiceBench:
    """One service's two sides: the per-user function the loop calls, the job Dagster runs, and
    the table whose rows show that both did the same work."""

    name: str
    job: str
    sync_user: UserSyncFunction
    rows_of: type[Base]


SERVICES: dict[str, ServiceBench] = {
    bench.name: bench
    for bench in (
        ServiceBench(
            "calendar",
            "calendar_sync",
            lambda google, database, uid: sync_user_calendars(google.session(uid), database, uid),
            CalendarEvent,
        ),
        ServiceBench(
            "drive",
            "drive_sync",
            lambda google, database, uid: sync_user_drive(google.session(uid), database, uid),
            DriveFile,
        ),
        ServiceBench("gmail", "email_sync", _sync_gmail, Email),
    )
}


# --- the plain loop: its own process --------------------------------------------------------


def sync_users(
    service: ServiceBench,
    google: GoogleResource,
    database: DatabaseResource,
    user_ids: list[str],
    concurrency: int,
) -> dict[str, Any]:
    """Sync ``user_ids`` on a pool of ``concurrency`` threads, as the batched asset does.

    One user's failure does not stop the others; failures are returned by user.
    """
    failures: dict[str, str] = {}
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(user_ids) or 1))) as pool:
        futures = {pool.submit(service.sync_user, google, database, uid): uid for uid in user_ids}
        for future in as_completed(futures):
            try:
                future.result()
            except Exception as exc:
                failures[futures[future]] = f"{type(exc).__name__}: {exc}"
                traceback.print_exception(exc, file=sys.stderr, limit=-3)
    return {
        "service": service.name,
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
    parser.add_argument("--service", choices=sorted(SERVICES), default="calendar")
    parser.add_argument("--users-file", help="file with one user id per line (added to user_ids)")
    parser.add_argument("--concurrency", type=int, default=None, help="default: SUNNY_USER_CONCURRENCY or 8")
    args = parser.parse_args(argv)
    user_ids = list(args.user_ids)
    if args.users_file:
        user_ids += [line.strip() for line in Path(args.users_file).read_text().splitlines() if line.strip()]
    database = DatabaseResource(url=os.environ["SUNNY_DATABASE_URL"])
    cipher = TokenCipher(key=os.environ["SUNNY_TOKEN_KEY"])
    google = GoogleResource(database=database, cipher=cipher, sandbox_url=os.environ["SUNNY_SANDBOX_URL"])
    result = sync_users(
        SERVICES[args.service], google, database, user_ids, args.concurrency or user_concurrency()
    )
    print(json.dumps(result), flush=True)
    return 1 if result["failed"] else 0


# --- the parent: sandbox process, samples, figures ------------------------------------------


def count_rows(database: DatabaseResource, service: ServiceBench) -> int:
    with database.begin() as conn:
        return conn.execute(select(func.count()).select_from(service.rows_of)).scalar_one()


def run_loop(service: ServiceBench, env: dict[str, str], users_file: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        MODULE,
        "loop",
        "--service",
        service.name,
        "--users-file",
        str(users_file),
    ]
    wall, output = run_process(command, env, f"plain loop ({service.name})")
    result = json.loads(next(line for line in reversed(output.splitlines()) if line.startswith("{")))
    return {"wall_seconds": wall, "sync_seconds": result["seconds"]}


_MATERIALIZED = re.compile(r"users materialized.*? in ([0-9.]+)\s*s")


def run_dagster(service: ServiceBench, env: dict[str, str], user_ids: list[str]) -> dict[str, Any]:
    command = dagster_job_command(service.job, user_ids, Trigger.FIRST_SYNC)
    wall, output = run_process(command, env, f"dagster run ({service.job})")
    # The asset logs its own duration; best effort, the wall time is the figure compared.
    found = _MATERIALIZED.search(output)
    return {"wall_seconds": wall, "sync_seconds": float(found.group(1)) if found else None}


def service_figures(runs: dict[str, list[dict[str, Any]]], warmup: dict[str, Any]) -> dict[str, Any]:
    """Median and spread of each side, the ratio of medians, and the rows each sample left."""
    walls = {side: summarize([r["wall_seconds"] for r in runs[side]]) for side in SIDES}
    syncs = {
        side: summarize([r["sync_seconds"] for r in runs[side] if r.get("sync_seconds") is not None])
        for side in SIDES
    }
    rows = {r["rows"] for side in SIDES for r in runs[side] if "rows" in r}
    rows |= {r["rows"] for r in warmup.values()}
    return {
        "rows_synced": sorted(rows),
        "wall_seconds": walls,
        "sync_seconds": syncs,
        "ratio_of_medians_dagster_over_loop": ratio(walls["dagster"]["median"], walls["loop"]["median"]),
        "warmup": warmup,
        "samples": runs,
    }


def print_figures(name: str, figures: dict[str, Any]) -> None:
    rows = f", rows per sync {figures['rows_synced']}" if figures["rows_synced"] else ""
    print(f"{name}{rows}:")
    print(format_summary("  plain loop (own process, thread pool)", figures["wall_seconds"]["loop"]))
    print(format_summary("  batched Dagster run (dagster job execute)", figures["wall_seconds"]["dagster"]))
    for side in SIDES:
        if figures["sync_seconds"][side].get("n"):
            print(format_summary(f"    of which inside the sync ({side})", figures["sync_seconds"][side]))
    print(f"  {name} ratio of medians dagster / loop: {figures['ratio_of_medians_dagster_over_loop']:.2f}x")


def parse_services(text: str) -> list[ServiceBench]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SERVICES))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown services {unknown}; choose from {sorted(SERVICES)}")
    return [SERVICES[name] for name in names]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "loop":
        return loop_main(argv[1:])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--services",
        type=parse_services,
        default=list(SERVICES.values()),
        help="comma-separated (default all)",
    )
    parser.add_argument("--users", type=int, default=200, help="sandbox users synced by each side")
    parser.add_argument(
        "--events", type=int, default=20, help="calendar events seeded per user (scales the rest)"
    )
    parser.add_argument("--samples", type=int, default=3, help="counted samples per side and service (>= 3)")
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
    services: list[ServiceBench] = args.services

    workdir = Path(tempfile.mkdtemp(prefix="sunny-bench-google-"))
    url = fresh_database()
    key = new_token_key()
    database = DatabaseResource(url=url)
    with sandbox_process(workdir, users=args.users, events_per_user=args.events, seed=args.seed) as sandbox:
        user_ids = connect_users(database, key, fetch_grants(sandbox))
        users_file = workdir / "users.txt"
        users_file.write_text("\n".join(user_ids) + "\n")
        home = dagster_home(workdir / "dagster_home", user_ids)
        # No webhook base URL and no Gmail topic: neither side opens push channels.
        env = app_env(home=home, database_url=url, token_key=key, sandbox_url=sandbox)
        env["SUNNY_USER_CONCURRENCY"] = str(args.concurrency)

        def sample(service: ServiceBench, side: str) -> dict[str, Any]:
            reset_synced_tables(database)
            result = (
                run_loop(service, env, users_file) if side == "loop" else run_dagster(service, env, user_ids)
            )
            result["rows"] = count_rows(database, service)
            return result

        print(
            f"{len(user_ids)} users x {args.events} events, services {[s.name for s in services]}, "
            f"concurrency {args.concurrency}, sandbox {sandbox}, logs {workdir}",
            flush=True,
        )
        warmup: dict[str, dict[str, Any]] = {s.name: {} for s in services}
        if args.warmup:
            for service in services:
                for side in SIDES:
                    result = warmup[service.name][side] = sample(service, side)
                    print(f"  warm-up {service.name} {side}: {result['wall_seconds']:.2f} s", flush=True)
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {
            s.name: {side: [] for side in SIDES} for s in services
        }
        for i, order in enumerate(alternating_orders(SIDES, args.samples)):
            for service in services:
                for side in order:
                    result = sample(service, side)
                    runs[service.name][side].append(result)
                    sync = f", sync {result['sync_seconds']:.2f} s" if result["sync_seconds"] else ""
                    print(
                        f"  sample {i + 1} {service.name} {side}: {result['wall_seconds']:.2f} s{sync}, "
                        f"{result['rows']} rows",
                        flush=True,
                    )

    per_service = {s.name: service_figures(runs[s.name], warmup[s.name]) for s in services}
    # A sample's total: the sum of its services' wall times, per side.
    totals = {
        side: [
            {"wall_seconds": sum(runs[s.name][side][i]["wall_seconds"] for s in services)}
            for i in range(args.samples)
        ]
        for side in SIDES
    }
    total = service_figures(totals, {})
    print(f"users {len(user_ids)}, events per user {args.events}, samples {args.samples}")
    for name, figures in per_service.items():
        print_figures(name, figures)
    print_figures("total", total)
    write_json(
        args.json,
        "google_sync",
        {
            "config": {
                "services": [s.name for s in services],
                "users": len(user_ids),
                "events_per_user": args.events,
                "samples": args.samples,
                "concurrency": args.concurrency,
                "warmup": args.warmup,
                "seed": args.seed,
            },
            "services": per_service,
            "total": {k: v for k, v in total.items() if k not in ("warmup", "rows_synced")},
        },
    )
    # Both sides of a service must leave the same rows, every sample.
    return 0 if all(len(f["rows_synced"]) == 1 for f in per_service.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
