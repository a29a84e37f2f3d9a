"""Benchmark: the push path, end to end, with `dagster dev` (webserver + daemon) running.

    python -m sunny_pipelines_tests.benchmarks.bench_push_path [--users 200] [--changes 100] [--burst 1000]

Every part runs in its own process, on free ports, with a temporary DAGSTER_HOME (a copy of the
project's dagster.yaml): the sandbox (``python -m sunny_pipelines.sandbox``), the webhook
receiver (``python -m sunny_pipelines.webhooks``) and ``dagster dev``. The users connect (their
grants from ``GET /sandbox/users``) and get their first sync and push channels from one batched
``calendar_sync`` run (``dagster job execute``), as the first-sync run does.

1. **Latency**: ``--changes`` single changes, one at a time, each after a random pause of 0 to
   ``--max-pause`` seconds (seeded RNG) so that they land all over the sensor's cycle; each is
   an event inserted for a random user through the real Google client. Latency = from the
   change to its row committed in ``calendar_events`` (sandbox → channel notification →
   receiver → ``webhook_inbox`` → sensor → run). Prints p50 / p95 / p99 / max.
2. **Burst**: ``--burst`` changes spread over all users, made as fast as the client allows;
   prints the notifications stored, the runs launched, the time until every inbox row is done
   and until every changed event is committed.

Writes the figures to ``--json`` (default ``.sunny/bench/push_path-<time>.json``).
Targets on a 2-core machine: p95 <= 8 s; the burst drained in <= 120 s with <= 20 runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
from sqlalchemy import func, select

from sunny_pipelines.db.grants import store_google_grants
from sunny_pipelines.db.models import CalendarEvent, WatchChannel, WebhookInbox
from sunny_pipelines.partitions import range_tags
from sunny_pipelines.resources.cipher import TokenCipher
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines_tests.benchmarks.common import (
    PROJECT_ROOT,
    fetch_grants,
    free_port,
    fresh_database,
    http_ok,
    latency_summary,
    new_token_key,
    python_command,
    sandbox_process,
    write_json,
)
from sunny_pipelines_tests.google_clients import calendar_client
from sunny_pipelines_tests.stack import dagster_command, dagster_home, running, wait_for

# Inbox statuses that end a row's processing.
FINISHED = ("done", "failed", "rejected")


def event_body(rng: random.Random, summary: str) -> dict[str, Any]:
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(
        days=rng.randint(1, 20), minutes=15 * rng.randint(0, 40)
    )
    return {
        "summary": summary,
        "start": {"dateTime": start.isoformat()},
        "end": {"dateTime": (start + timedelta(minutes=30)).isoformat()},
    }


def row_committed(database: DatabaseResource, user_id: str, event_id: str) -> bool:
    with database.begin() as conn:
        query = select(CalendarEvent.event_id).where(
            CalendarEvent.user_id == user_id, CalendarEvent.event_id == event_id
        )
        return conn.execute(query).first() is not None


def first_sync(env: dict[str, str], user_ids: list[str], workdir: Path) -> float:
    """Every user's first full sync and push channels: one batched run, as the first-sync run."""
    command = [
        sys.executable, "-m", "dagster", "job", "execute", "-m", "sunny_pipelines.definitions",
        "-j", "calendar_sync", "--tags", json.dumps(range_tags(user_ids[0], user_ids[-1])),
    ]  # fmt: skip
    started = time.perf_counter()
    with open(workdir / "first_sync.log", "wb") as log:
        completed = subprocess.run(command, env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)
    if completed.returncode != 0:
        raise SystemExit(f"first sync failed ({completed.returncode}); see {workdir / 'first_sync.log'}")
    return time.perf_counter() - started


def measure_singles(
    sandbox: str,
    grants: list[dict],
    database: DatabaseResource,
    count: int,
    max_pause: float,
    rng: random.Random,
    timeout: float,
) -> list[dict[str, Any]]:
    clients: dict[str, Any] = {}
    changes = []
    for i in range(count):
        grant = rng.choice(grants)
        client = clients.get(grant["id"]) or clients.setdefault(grant["id"], calendar_client(sandbox, grant))
        pause = rng.uniform(0, max_pause)
        body = event_body(rng, f"single {i}")
        time.sleep(pause)  # changes land anywhere in the sensor's cycle
        started = time.perf_counter()
        event_id = client.events().insert(calendarId="primary", body=body).execute(num_retries=3)["id"]
        user_id = grant["id"]
        wait_for(lambda: row_committed(database, user_id, event_id), timeout=timeout, interval=0.05)  # noqa: B023
        latency = time.perf_counter() - started
        changes.append({"user_id": user_id, "event_id": event_id, "pause": pause, "latency": latency})
        print(f"  change {i + 1}/{count}: {latency:.2f} s (after a {pause:.1f} s pause)", flush=True)
    return changes


def inbox_counts(database: DatabaseResource, after_id: int) -> dict[str, int]:
    with database.begin() as conn:
        rows = conn.execute(
            select(WebhookInbox.status, func.count())
            .where(WebhookInbox.id > after_id)
            .group_by(WebhookInbox.status)
        ).all()
    return {str(status): n for status, n in rows}


def measure_burst(
    sandbox: str,
    grants: list[dict],
    database: DatabaseResource,
    instance: dg.DagsterInstance,
    changes: int,
    rng: random.Random,
    timeout: float,
) -> dict[str, Any]:
    with database.begin() as conn:
        before = conn.execute(select(func.coalesce(func.max(WebhookInbox.id), 0))).scalar_one()
    runs_before = instance.get_runs_count()
    tag = f"burst {rng.randrange(10**9)}"
    per_user: dict[str, list[dict]] = {}
    for i in range(changes):
        grant = grants[i % len(grants)]
        per_user.setdefault(grant["id"], []).append(event_body(rng, f"{tag} {i}"))
    by_id = {grant["id"]: grant for grant in grants}

    def make_changes(user_id: str) -> int:
        # One client per task: httplib2 is not thread-safe.
        client = calendar_client(sandbox, by_id[user_id])
        for body in per_user[user_id]:
            client.events().insert(calendarId="primary", body=body).execute(num_retries=3)
        return len(per_user[user_id])

    def committed_events() -> int:
        with database.begin() as conn:
            return conn.execute(
                select(func.count()).select_from(CalendarEvent).where(CalendarEvent.summary.like(f"{tag} %"))
            ).scalar_one()

    started = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        made = sum(pool.map(make_changes, per_user))
    changes_made = time.perf_counter() - started
    print(f"  {made} changes made in {changes_made:.1f} s", flush=True)

    events_seconds = wait_for(lambda: committed_events() >= made, timeout=timeout, interval=0.5)
    events_seconds += changes_made
    last_total, quiet_since = -1, time.monotonic()

    def drained() -> bool:
        # Every change's notification is stored and finished. Should the sandbox send fewer
        # notifications than changes, accept once no new row arrived for 10 s.
        nonlocal last_total, quiet_since
        counts = inbox_counts(database, before)
        total = sum(counts.values())
        if total != last_total:
            last_total, quiet_since = total, time.monotonic()
        unfinished = total - sum(counts.get(s, 0) for s in FINISHED)
        return unfinished == 0 and (total >= made or time.monotonic() - quiet_since > 10)

    wait_for(drained, timeout=timeout, interval=0.5)
    rows_seconds = time.perf_counter() - started
    counts = inbox_counts(database, before)
    return {
        "changes": made,
        "users": len(per_user),
        "seconds_to_make_changes": changes_made,
        "notifications_stored": sum(counts.values()),
        "inbox_statuses": counts,
        "runs_launched": instance.get_runs_count() - runs_before,
        "seconds_until_inbox_done": rows_seconds,
        "seconds_until_events_committed": events_seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=200, help="sandbox users (all connected, with channels)")
    parser.add_argument("--events", type=int, default=5, help="events seeded per user")
    parser.add_argument("--changes", type=int, default=100, help="single changes timed one at a time")
    parser.add_argument("--max-pause", type=float, default=5.0, help="random pause before each change, s")
    parser.add_argument("--burst", type=int, default=1000, help="changes of the burst (0: skip)")
    parser.add_argument("--seed", type=int, default=3, help="seed of the pauses, users and events")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up waiting after this long, s")
    parser.add_argument("--json", help="where to write the figures (default .sunny/bench/...)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    rng = random.Random(args.seed)

    workdir = Path(tempfile.mkdtemp(prefix="sunny-bench-push-"))
    url = fresh_database()
    key = new_token_key()
    database = DatabaseResource(url=url)
    print(f"logs and DAGSTER_HOME under {workdir}", flush=True)
    with sandbox_process(workdir, users=args.users, events_per_user=args.events, seed=11) as sandbox:
        grants = fetch_grants(sandbox)
        with database.begin() as conn:
            store_google_grants(conn, TokenCipher(key=key), grants)
        user_ids = [grant["id"] for grant in grants]
        receiver_port = free_port()
        receiver_url = f"http://127.0.0.1:{receiver_port}"
        env = {
            **os.environ,
            "DAGSTER_HOME": str(dagster_home(workdir / "dagster_home", user_ids)),
            "SUNNY_DATABASE_URL": url,
            "SUNNY_TOKEN_KEY": key,
            "SUNNY_SANDBOX_URL": sandbox,
            "SUNNY_WEBHOOK_BASE_URL": receiver_url,
            "PYTHONUNBUFFERED": "1",
        }
        receiver = python_command(
            "-m", "sunny_pipelines.webhooks", "--port", str(receiver_port), "--no-access-log",
            "--log-level", "warning",
        )  # fmt: skip
        with running(receiver, env, workdir / "receiver.log", lambda: http_ok(receiver_url + "/healthz")):
            onboarding = first_sync(env, user_ids, workdir)
            with database.begin() as conn:
                channels = conn.execute(select(func.count()).select_from(WatchChannel)).scalar_one()
            print(f"{len(user_ids)} users synced, {channels} channels, in {onboarding:.1f} s", flush=True)
            if not channels:
                raise SystemExit("the first sync opened no push channels; see first_sync.log")

            webserver_port = free_port()
            webserver = f"http://127.0.0.1:{webserver_port}"
            dev = dagster_command(
                "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(webserver_port)
            )
            with (
                running(dev, env, workdir / "dagster_dev.log", lambda: http_ok(webserver + "/server_info")),
                dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance,
            ):
                wait_for(lambda: "SENSOR" in instance.get_daemon_heartbeats(), timeout=120, interval=0.5)
                time.sleep(6)  # let the sensors' first ticks pass
                runs_before = instance.get_runs_count()
                singles = measure_singles(
                    sandbox, grants, database, args.changes, args.max_pause, rng, args.timeout
                )
                singles_runs = instance.get_runs_count() - runs_before
                burst = (
                    measure_burst(sandbox, grants, database, instance, args.burst, rng, args.timeout)
                    if args.burst
                    else None
                )

    latency = latency_summary([change["latency"] for change in singles])
    print(f"single changes: {latency['n']} (pauses 0–{args.max_pause:g} s), change -> committed row:")
    print(
        f"  p50 {latency['p50']:.2f} s, p95 {latency['p95']:.2f} s, p99 {latency['p99']:.2f} s, "
        f"max {latency['max']:.2f} s (target p95 <= 8 s); {singles_runs} runs launched"
    )
    if burst:
        print(
            f"burst: {burst['changes']} changes across {burst['users']} users -> "
            f"{burst['notifications_stored']} notifications stored {burst['inbox_statuses']}, "
            f"{burst['runs_launched']} runs launched; every inbox row finished after "
            f"{burst['seconds_until_inbox_done']:.1f} s, every event committed after "
            f"{burst['seconds_until_events_committed']:.1f} s (targets: <= 120 s, <= 20 runs)"
        )
    write_json(
        args.json,
        "push_path",
        {
            "config": {
                "users": len(grants),
                "events_per_user": args.events,
                "changes": args.changes,
                "max_pause_seconds": args.max_pause,
                "burst": args.burst,
                "seed": args.seed,
            },
            "first_sync_seconds": onboarding,
            "channels_open": channels,
            "latency_seconds": latency,
            "singles_runs_launched": singles_runs,
            "singles": singles,
            "burst": burst,
            "logs": str(workdir),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
