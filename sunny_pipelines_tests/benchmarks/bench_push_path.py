"""Benchmark: the push path, end to end, with `dagster dev` (webserver + daemon) running.

    python -m sunny_pipelines_tests.benchmarks.bench_push_path [--service calendar|drive|gmail]
        [--users 200] [--changes 100] [--burst 1000]

Every part runs in its own process, on free ports, with a temporary DAGSTER_HOME (a copy of the
project's dagster.yaml): the sandbox (``python -m sunny_pipelines.sandbox``, with a Pub/Sub push
subscription of the Gmail topic to the receiver, as ``scripts/dev.sh`` wires it), the webhook
receiver (``python -m sunny_pipelines.webhooks``) and ``dagster dev``. The users connect (their
grants from ``GET /sandbox/users``) and get their first sync and push channels of every service
from one batched run per service (``dagster job execute`` of ``calendar_sync``, ``drive_sync``
and ``email_sync``, as the first-sync runs do), so that the schedules find nobody due while the
changes are timed: the steady state of a deployment.

``--service`` chooses what is changed and whose rows are awaited (the default is calendar):

- **calendar**: an event inserted (``events.insert``) → channel notification → ``calendar_events``;
- **drive**: a file uploaded (``files.create`` with a media body) → ``changes.watch`` notification
  → ``drive_files``;
- **gmail**: a message inserted into the inbox (``messages.insert``) → signed Pub/Sub push →
  ``emails``.

1. **Latency**: ``--changes`` single changes, one at a time, each after a random pause of 0 to
   ``--max-pause`` seconds (seeded RNG) so that they land all over the sensor's cycle; each is
   made for a random user through the real Google client. Latency = from the change to its row
   committed (sandbox → notification → receiver → ``webhook_inbox`` → sensor → run). Prints
   p50 / p95 / p99 / max.
2. **Burst** (any service; ``--burst 0`` skips it): ``--burst`` changes spread over all users,
   made as fast as the client allows; prints the notifications stored, the runs launched, the
   time until every inbox row is done and until every change's row is committed.

Writes the figures to ``--json`` (default ``.sunny/bench/push_path-<service>-<time>.json``).
Targets on a 2-core machine: p95 <= 8 s; the burst drained in <= 120 s with <= 20 runs.
"""

from __future__ import annotations

import argparse
import base64
import random
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import dagster as dg
from googleapiclient.http import MediaInMemoryUpload
from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute

from sunny_pipelines.db.models import Base, CalendarEvent, DriveFile, Email, WatchChannel, WebhookInbox
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.sandbox.core.signing import PUBSUB_SERVICE_ACCOUNT
from sunny_pipelines.vocabulary import Trigger
from sunny_pipelines_tests.benchmarks.common import (
    connect_users,
    dagster_job_command,
    fetch_grants,
    free_port,
    fresh_database,
    http_ok,
    latency_summary,
    new_token_key,
    python_command,
    run_process,
    sandbox_process,
    write_json,
)
from sunny_pipelines_tests.google_clients import google_client
from sunny_pipelines_tests.stack import app_env, dagster_command, dagster_home, running, wait_for

# Inbox statuses that end a row's processing.
FINISHED = ("done", "failed", "rejected")
# The topic the Gmail watches publish to; the sandbox pushes it to the receiver (as scripts/dev.sh).
GMAIL_TOPIC = "projects/sunny-bench/topics/gmail-push"


def event_body(rng: random.Random, summary: str) -> dict[str, Any]:
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(
        days=rng.randint(1, 20), minutes=15 * rng.randint(0, 40)
    )
    return {
        "summary": summary,
        "start": {"dateTime": start.isoformat()},
        "end": {"dateTime": (start + timedelta(minutes=30)).isoformat()},
    }


def insert_event(client: Any, label: str, rng: random.Random) -> str:
    body = event_body(rng, label)
    return client.events().insert(calendarId="primary", body=body).execute(num_retries=3)["id"]


def upload_file(client: Any, label: str, rng: random.Random) -> str:
    media = MediaInMemoryUpload(f"{label}\n{rng.random()}\n".encode(), mimetype="text/plain")
    body = {"name": label, "mimeType": "text/plain"}
    return client.files().create(body=body, media_body=media, fields="id").execute(num_retries=3)["id"]


def insert_message(client: Any, label: str, rng: random.Random) -> str:
    message = EmailMessage()
    message["From"] = f"Bench Sender <sender{rng.randrange(1000)}@example.com>"
    message["To"] = "me@sunny.test"
    message["Subject"] = label
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain="bench.sunny.test")
    message.set_content(f"{label}: a change for the push benchmark.\n")
    raw = base64.urlsafe_b64encode(message.as_bytes()).decode()
    body = {"raw": raw, "labelIds": ["INBOX", "UNREAD"]}
    return client.users().messages().insert(userId="me", body=body).execute(num_retries=3)["id"]


@dataclass(frozen=True)
class PushService:
    """What a change of one service is, and the row that shows it arrived."""

    name: str
    api: str  # the Google API client that makes the change
    make_change: Callable[[Any, str, random.Random], str]  # (client, label, rng) -> changed id
    table: type[Base]
    key: InstrumentedAttribute  # the changed object's id
    label: InstrumentedAttribute  # the column that holds the change's label

    def row_committed(self, database: DatabaseResource, user_id: str, object_id: str) -> bool:
        table: Any = self.table
        with database.begin() as conn:
            query = select(self.key).where(table.user_id == user_id, self.key == object_id)
            return conn.execute(query).first() is not None

    def rows_labelled(self, database: DatabaseResource, prefix: str) -> int:
        with database.begin() as conn:
            query = select(func.count()).select_from(self.table).where(self.label.like(f"{prefix}%"))
            return conn.execute(query).scalar_one()


SERVICES: dict[str, PushService] = {
    service.name: service
    for service in (
        PushService(
            "calendar", "calendar", insert_event, CalendarEvent, CalendarEvent.event_id, CalendarEvent.summary
        ),
        PushService("drive", "drive", upload_file, DriveFile, DriveFile.file_id, DriveFile.name),
        PushService("gmail", "gmail", insert_message, Email, Email.message_id, Email.subject),
    )
}
# Every service's first-sync job: all of them run before the changes, as in a deployment.
FIRST_SYNC_JOBS = ("calendar_sync", "drive_sync", "email_sync")


def row_committed(database: DatabaseResource, user_id: str, event_id: str) -> bool:
    """Whether the calendar event ``event_id`` of ``user_id`` is committed."""
    return SERVICES["calendar"].row_committed(database, user_id, event_id)


def first_sync(env: dict[str, str], user_ids: list[str], workdir: Path) -> float:
    """Every user's first full sync and push channels of every service: one batched run per
    service, as the first-sync runs."""
    started = time.perf_counter()
    for job in FIRST_SYNC_JOBS:
        _, output = run_process(
            dagster_job_command(job, user_ids, Trigger.FIRST_SYNC), env, f"first sync {job}"
        )
        (workdir / f"first_sync_{job}.log").write_text(output)
    return time.perf_counter() - started


def measure_singles(
    service: PushService,
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
        if grant["id"] not in clients:
            clients[grant["id"]] = google_client(sandbox, grant, service.api)
        pause = rng.uniform(0, max_pause)
        time.sleep(pause)  # changes land anywhere in the sensor's cycle
        started = time.perf_counter()
        object_id = service.make_change(clients[grant["id"]], f"single {i}", rng)
        user_id = grant["id"]
        wait_for(
            lambda: service.row_committed(database, user_id, object_id),  # noqa: B023
            timeout=timeout,
            interval=0.05,
        )
        latency = time.perf_counter() - started
        changes.append({"user_id": user_id, "object_id": object_id, "pause": pause, "latency": latency})
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
    service: PushService,
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
    per_user: dict[str, list[str]] = {}
    for i in range(changes):
        grant = grants[i % len(grants)]
        per_user.setdefault(grant["id"], []).append(f"{tag} {i}")
    by_id = {grant["id"]: grant for grant in grants}
    # One seeded RNG per user, drawn up front: the pool's threads must not share one.
    rngs = {user_id: random.Random(rng.randrange(2**32)) for user_id in per_user}

    def make_changes(user_id: str) -> int:
        # One client per task: httplib2 is not thread-safe.
        client = google_client(sandbox, by_id[user_id], service.api)
        for label in per_user[user_id]:
            service.make_change(client, label, rngs[user_id])
        return len(per_user[user_id])

    def committed_events() -> int:
        return service.rows_labelled(database, f"{tag} ")

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
    parser.add_argument("--service", choices=sorted(SERVICES), default="calendar", help="what is changed")
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
    service = SERVICES[args.service]

    workdir = Path(tempfile.mkdtemp(prefix=f"sunny-bench-push-{service.name}-"))
    url = fresh_database()
    key = new_token_key()
    database = DatabaseResource(url=url)
    print(f"logs and DAGSTER_HOME under {workdir}", flush=True)
    # The receiver's port is chosen first: the sandbox's Pub/Sub subscription pushes to it.
    receiver_port = free_port()
    receiver_url = f"http://127.0.0.1:{receiver_port}"
    gmail_endpoint = f"{receiver_url}/webhooks/google/gmail"
    subscription = ["--pubsub-subscription", f"{GMAIL_TOPIC}={gmail_endpoint},{gmail_endpoint}"]
    with sandbox_process(
        workdir, users=args.users, events_per_user=args.events, seed=11, extra_args=subscription
    ) as sandbox:
        grants = fetch_grants(sandbox)
        user_ids = connect_users(database, key, grants)
        env = app_env(
            home=dagster_home(workdir / "dagster_home", user_ids),
            database_url=url,
            token_key=key,
            sandbox_url=sandbox,
            webhook_url=receiver_url,
            gmail_topic=GMAIL_TOPIC,
        )
        # The receiver verifies the sandbox's signed Pub/Sub pushes (audience = the endpoint).
        env |= {
            "SUNNY_PUBSUB_AUDIENCE": gmail_endpoint,
            "SUNNY_PUBSUB_SERVICE_ACCOUNT": PUBSUB_SERVICE_ACCOUNT,
        }
        receiver = python_command(
            "-m", "sunny_pipelines.webhooks", "--port", str(receiver_port), "--no-access-log",
            "--log-level", "warning",
        )  # fmt: skip
        with running(receiver, env, workdir / "receiver.log", lambda: http_ok(receiver_url + "/healthz")):
            onboarding = first_sync(env, user_ids, workdir)
            with database.begin() as conn:
                query = select(WatchChannel.service, func.count()).group_by(WatchChannel.service)
                channels = {str(name): n for name, n in conn.execute(query).all()}
            print(f"{len(user_ids)} users synced, channels {channels}, in {onboarding:.1f} s", flush=True)
            # Calendar channels are "calendar" and "calendar_list"; Drive "drive"; Gmail watches "gmail".
            if not any(name.startswith(service.name) for name in channels):
                raise SystemExit(f"the first sync opened no {service.name} push channel; see {workdir}")

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
                    service, sandbox, grants, database, args.changes, args.max_pause, rng, args.timeout
                )
                singles_runs = instance.get_runs_count() - runs_before
                burst = (
                    measure_burst(service, sandbox, grants, database, instance, args.burst, rng, args.timeout)
                    if args.burst
                    else None
                )

    latency = latency_summary([change["latency"] for change in singles])
    print(
        f"{service.name} single changes: {latency['n']} (pauses 0–{args.max_pause:g} s), "
        "change -> committed row:"
    )
    print(
        f"  p50 {latency['p50']:.2f} s, p95 {latency['p95']:.2f} s, p99 {latency['p99']:.2f} s, "
        f"max {latency['max']:.2f} s (target p95 <= 8 s); {singles_runs} runs launched"
    )
    if burst:
        print(
            f"{service.name} burst: {burst['changes']} changes across {burst['users']} users -> "
            f"{burst['notifications_stored']} notifications stored {burst['inbox_statuses']}, "
            f"{burst['runs_launched']} runs launched; every inbox row finished after "
            f"{burst['seconds_until_inbox_done']:.1f} s, every changed row committed after "
            f"{burst['seconds_until_events_committed']:.1f} s (targets: <= 120 s, <= 20 runs)"
        )
    write_json(
        args.json,
        f"push_path-{service.name}",
        {
            "config": {
                "service": service.name,
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
