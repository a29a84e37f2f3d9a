"""Benchmark: the fleet. The quick-start stack with 10,000 sandbox users and every service on, for
at least one full cadence cycle.

    python -m sunny_pipelines_tests.benchmarks.bench_fleet [--users 10000] [--cycle-minutes 30]

The stack is the quick start's processes (the sandbox with its Gmail Pub/Sub subscription and
Attendee webhook, the webhook receiver, ``dagster dev`` with every schedule and sensor on its
default status), each in its own process on free ports. Dagster's storage is PostgreSQL
(deploy/dagster.yaml, as any fleet runs it; the SQLite default keeps one event-log file per run,
which cannot be counted), and so is ours.

1. **Onboarding** (not timed as part of the cycle): the users connect (their grants stored), their
   partitions are added, and every domain's first-sync job runs over all of them as batched
   `dagster job execute` runs. Onboarding time is printed.
2. **Idle baseline**: with everyone just synced (nobody due), ``--baseline-changes`` calendar
   events are inserted one at a time for random users and each is timed to its committed row.
3. **Cycle**: every (user, service)'s last sync is moved back by a uniform random share of its
   interval, as in a fleet that has been running for a while (a mass onboarding would instead
   make everyone due at the same tick), then the stack runs for ``--cycle-minutes`` (default:
   the longest default sync interval, so every user falls due at least once). Meanwhile an
   event is inserted every ``--change-every`` seconds for a random user, each timed to its row;
   CPU time is sampled per process kind every second; users within cadence every minute.
4. **Housekeeping**: ``dagster dev`` stops, and ``run_retention_job`` runs with a retention of 0
   days (every run not holding a partition's latest event is deleted).

Prints: users within their cadence per service (synced within interval + one 5-minute schedule
tick), syncs achieved against syncs required per hour, runs per hour and their queue wait, sensor
and schedule tick durations (p50 / max), event-log rows added per cycle before and after
housekeeping, PostgreSQL size per user (ours and Dagster's), change-to-row p50/p95 under load
against the idle baseline, and CPU seconds per process kind (the profile: what limits the fleet).
Writes everything to ``--json`` (default ``.sunny/bench/fleet-<time>.json``).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from sunny_pipelines.calendar.sync import LIST_SERVICE
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.sandbox.core.signing import PUBSUB_SERVICE_ACCOUNT
from sunny_pipelines.vocabulary import Trigger
from sunny_pipelines_tests.benchmarks.bench_push_path import SERVICES as PUSH_SERVICES
from sunny_pipelines_tests.benchmarks.common import (
    BENCH_DATABASE_URL,
    connect_users,
    dagster_job_command,
    empty_database,
    fetch_grants,
    free_port,
    fresh_database,
    http_ok,
    latency_summary,
    new_token_key,
    percentile,
    python_command,
    ratio,
    run_process,
    sandbox_process,
    write_json,
)
from sunny_pipelines_tests.google_clients import google_client
from sunny_pipelines_tests.stack import app_env, dagster_command, deploy_dagster_home, running, wait_for

GMAIL_TOPIC = "projects/sunny-bench/topics/gmail-push"
# The sync schedules tick every 5 minutes: a user due just after a tick waits for the next one.
SCHEDULE_TICK_SECONDS = 300
# A first-sync run covers at most this many users (the `dagster job execute` processes run two
# at a time: the machine has two cores).
ONBOARDING_USERS_PER_RUN = 1000
CALENDAR = PUSH_SERVICES["calendar"]


def fresh_dagster_database() -> str:
    """An empty PostgreSQL database for Dagster's run, event-log and schedule storage."""
    url = make_url(BENCH_DATABASE_URL)
    return empty_database(url.set(database=f"{url.database}_dagster").render_as_string(hide_password=False))


# --- onboarding -----------------------------------------------------------------------------


def first_sync_jobs() -> list[str]:
    from sunny_pipelines.definitions import DOMAINS

    return sorted({d.first_sync_job.name for d in DOMAINS if d.first_sync_job is not None})


def onboard(env: dict[str, str], user_ids: list[str], workdir: Path) -> float:
    """Every domain's first sync of every user, in batched runs two at a time."""
    chunks = [
        user_ids[i : i + ONBOARDING_USERS_PER_RUN] for i in range(0, len(user_ids), ONBOARDING_USERS_PER_RUN)
    ]
    work = [(job, n, chunk) for job in first_sync_jobs() for n, chunk in enumerate(chunks)]
    started = time.perf_counter()

    def one(item: tuple[str, int, list[str]]) -> None:
        job, n, chunk = item
        command = dagster_job_command(job, chunk, Trigger.FIRST_SYNC)
        seconds, output = run_process(command, env, f"first sync {job} #{n}")
        (workdir / f"first_sync_{job}_{n}.log").write_text(output)
        print(f"  first sync {job} users {n * ONBOARDING_USERS_PER_RUN}+: {seconds:.0f} s", flush=True)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, work))
    return time.perf_counter() - started


def spread_last_syncs(database: DatabaseResource, seed: int) -> None:
    """Move each (user, service)'s last sync back by a random share of its interval."""
    with database.begin() as conn:
        conn.execute(text("SELECT setseed(:s)"), {"s": (seed % 1000) / 1000})
        conn.execute(
            text(
                "UPDATE sync_state SET last_synced_at = now() "
                "- make_interval(secs => random() * interval_seconds) WHERE last_synced_at IS NOT NULL"
            )
        )


# --- what is sampled during the cycle -------------------------------------------------------


def within_cadence(database: DatabaseResource) -> dict[str, dict[str, int]]:
    """Per service: (user, service) rows synced within their interval plus one schedule tick.
    The calendar list is left out: the calendar sync refreshes it when a day old
    (`CALENDAR_LIST_MAX_AGE`), not by its row's interval."""
    with database.begin() as conn:
        rows = conn.execute(
            text(
                "SELECT service, count(*) FILTER (WHERE last_synced_at >= now() - make_interval("
                "secs => interval_seconds + :tick)), count(*) FROM sync_state WHERE service <> :list "
                "GROUP BY service ORDER BY service"
            ),
            {"tick": SCHEDULE_TICK_SECONDS, "list": LIST_SERVICE},
        ).all()
    return {service: {"within": within, "rows": total} for service, within, total in rows}


def syncs_since(database: DatabaseResource, since: datetime) -> dict[str, dict[str, Any]]:
    """Per service: syncs finished since ``since`` (ok, failed, by trigger) and the syncs the
    users' intervals require per hour."""
    with database.begin() as conn:
        done = conn.execute(
            text(
                "SELECT service, count(*) FILTER (WHERE ok), count(*) FILTER (WHERE NOT ok) "
                "FROM sync_history WHERE finished_at >= :since AND service <> :list GROUP BY service"
            ),
            {"since": since, "list": LIST_SERVICE},
        ).all()
        required = conn.execute(
            text(
                "SELECT service, sum(3600.0 / interval_seconds) FROM sync_state "
                "WHERE service <> :list GROUP BY service"
            ),
            {"list": LIST_SERVICE},
        ).all()
        errors = conn.execute(
            text(
                "SELECT service, left(error, 120), count(*) FROM sync_history "
                "WHERE finished_at >= :since AND NOT ok GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 10"
            ),
            {"since": since},
        ).all()
    figures: dict[str, dict[str, Any]] = {
        service: {"required_per_hour": float(per_hour)} for service, per_hour in required
    }
    for service, ok, failed in done:
        figures.setdefault(service, {}).update(ok=ok, failed=failed)
    for service, error, n in errors:
        figures.setdefault(service, {}).setdefault("errors", {})[error] = n
    return figures


# Which kind of process a command line is (the profile's rows).
PROCESS_KINDS = (
    ("google sandbox (not ours)", "sunny_pipelines.sandbox"),
    ("webhook receiver", "sunny_pipelines.webhooks"),
    ("run workers", "execute_run"),
    # The code server starts each run in a process of its own with multiprocessing's spawn.
    ("run workers", "multiprocessing.spawn"),
    ("code server (sensors, schedules)", "api grpc"),
    ("code server (sensors, schedules)", "code-server start"),
    ("dagster daemon", "dagster-daemon"),
    ("dagster daemon", "dagster._daemon"),
    ("webserver", "dagster-webserver"),
    ("webserver", "dagster_webserver"),
    ("benchmark", "bench_fleet"),
)


def process_kind(cmdline: str, comm: str) -> str:
    if comm.startswith("postgres"):
        return "postgresql"
    for kind, marker in PROCESS_KINDS:
        if marker in cmdline:
            return kind
    return "other"


class CpuProfile:
    """CPU seconds per process kind, from /proc every second (a process that lives less than a
    second between samples is missed; the machine's total shows how much was)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.other: dict[str, float] = defaultdict(float)
        self._last: dict[int, float] = {}
        self._tick = os.sysconf("SC_CLK_TCK")
        self._stop = threading.Event()
        self._machine_start = self._machine_busy()

    def _machine_busy(self) -> float:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        values = [int(v) for v in fields]
        idle = values[3] + values[4]
        return (sum(values[:8]) - idle) / self._tick

    def sample(self) -> None:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            cmdline = raw.replace(b"\0", b" ").decode(errors="replace")
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            used = (int(fields[11]) + int(fields[12])) / self._tick
            previous = self._last.get(pid)
            self._last[pid] = used
            # A pid seen for the first time started after the last sample (or is the first sample).
            delta = used - previous if previous is not None else (used if self._started else 0.0)
            kind = process_kind(cmdline, comm)
            self.seconds[kind] += max(delta, 0.0)
            if kind == "other":  # shown in the report, so that nothing big hides there
                self.other[(cmdline or comm)[:120]] += max(delta, 0.0)
        self._started = True

    _started = False

    @contextmanager
    def sampling(self) -> Iterator[CpuProfile]:
        self.sample()
        self._machine_start = self._machine_busy()
        thread = threading.Thread(target=self._loop, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
            self.sample()
            self.seconds["machine total (all cores)"] = self._machine_busy() - self._machine_start

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            self.sample()


class ChangeTimer:
    """Calendar events inserted through the real Google client, each timed until its row is
    committed; waits run on threads so that changes keep coming while earlier ones wait."""

    def __init__(self, sandbox: str, grants: list[dict], database: DatabaseResource, rng: random.Random):
        self.sandbox, self.grants, self.database, self.rng = sandbox, grants, database, rng
        self.latencies: list[float] = []
        self.missed = 0
        self._waiters = ThreadPoolExecutor(32)
        self._lock = threading.Lock()

    def change(self, label: str, timeout: float) -> None:
        grant = self.rng.choice(self.grants)
        client = google_client(self.sandbox, grant, CALENDAR.api)
        started = time.perf_counter()
        event_id = CALENDAR.make_change(client, label, random.Random(self.rng.random()))
        self._waiters.submit(self._wait, grant["id"], event_id, started, timeout)

    def _wait(self, user_id: str, event_id: str, started: float, timeout: float) -> None:
        try:
            wait_for(lambda: CALENDAR.row_committed(self.database, user_id, event_id), timeout, interval=0.25)
        except TimeoutError:
            with self._lock:
                self.missed += 1
            return
        with self._lock:
            self.latencies.append(time.perf_counter() - started)

    def finish(self) -> dict[str, Any]:
        self._waiters.shutdown(wait=True)
        return {**latency_summary(self.latencies), "missed": self.missed}


def run_cycle(
    instance: dg.DagsterInstance,
    database: DatabaseResource,
    timer: ChangeTimer,
    seconds: float,
    change_every: float,
    rng: random.Random,
) -> dict[str, float]:
    """Changes every ``change_every`` s (±50%) for ``seconds``; every minute, prints the users
    within cadence and the queued runs. Returns each service's lowest share within cadence."""
    deadline = time.monotonic() + seconds
    lowest: dict[str, float] = {}
    next_sample, n = 0.0, 0
    while time.monotonic() < deadline:
        if time.monotonic() >= next_sample:
            cadence = within_cadence(database)
            shares = {service: ratio(c["within"], c["rows"]) for service, c in cadence.items()}
            for service, share in shares.items():
                lowest[service] = min(lowest.get(service, 1.0), share)
            queued = instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
            listed = ", ".join(f"{service} {share:.0%}" for service, share in shares.items())
            print(
                f"  {datetime.now(UTC):%H:%M:%S} within cadence: {listed}; queued runs {queued}", flush=True
            )
            next_sample = time.monotonic() + 60
        timer.change(f"fleet load {n}", timeout=max(60.0, deadline - time.monotonic() + 120))
        n += 1
        time.sleep(rng.uniform(0.5, 1.5) * change_every)
    return lowest


def graphql(webserver: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = requests.post(
        f"{webserver}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
    )
    response.raise_for_status()
    document = response.json()
    if document.get("errors"):
        raise RuntimeError(f"GraphQL error: {document['errors']}")
    return document["data"]


SCHEDULES_QUERY = """{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name }
  schedules { name scheduleState { id status } } } } } }"""


@contextmanager
def schedules_paused(webserver: str) -> Iterator[list[str]]:
    """Every running schedule stopped (as an operator would in the UI) for the block, then started
    again: at 10,000 users the schedules keep runs in flight all the time (Gmail's interval is one
    tick), so the idle baseline is taken with them paused."""
    [repo] = graphql(webserver, SCHEDULES_QUERY)["repositoriesOrError"]["nodes"]
    running_now = [s for s in repo["schedules"] if s["scheduleState"]["status"] == "RUNNING"]
    for schedule in running_now:
        graphql(
            webserver,
            "mutation($id: String!) { stopRunningSchedule(id: $id) { __typename } }",
            {"id": schedule["scheduleState"]["id"]},
        )
    try:
        yield [s["name"] for s in running_now]
    finally:
        for schedule in running_now:
            selector = {
                "repositoryLocationName": repo["location"]["name"],
                "repositoryName": repo["name"],
                "scheduleName": schedule["name"],
            }
            graphql(
                webserver,
                "mutation($s: ScheduleSelector!) { startSchedule(scheduleSelector: $s) { __typename } }",
                {"s": selector},
            )


# --- what Dagster recorded ------------------------------------------------------------------


def dagster_counts(dagster_url: str) -> dict[str, int]:
    engine = create_engine(dagster_url)
    with engine.connect() as conn:
        counts = {
            "event_log_rows": conn.execute(text("SELECT count(*) FROM event_logs")).scalar_one(),
            "runs": conn.execute(text("SELECT count(*) FROM runs")).scalar_one(),
            "database_bytes": conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one(),
        }
    engine.dispose()
    return counts


def our_database_size(database: DatabaseResource) -> dict[str, Any]:
    with database.begin() as conn:
        total = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        tables = conn.execute(
            text(
                "SELECT relname, pg_total_relation_size(relid) FROM pg_catalog.pg_statio_user_tables "
                "ORDER BY 2 DESC LIMIT 8"
            )
        ).all()
    return {"database_bytes": total, "largest_tables_bytes": {name: size for name, size in tables}}


def run_figures(instance: dg.DagsterInstance, since: float, hours: float) -> dict[str, Any]:
    """Runs created since ``since`` (epoch seconds): per job, statuses, queue wait, duration."""
    records = instance.get_run_records(dg.RunsFilter(created_after=datetime.fromtimestamp(since, UTC)))
    per_job: dict[str, int] = defaultdict(int)
    statuses: dict[str, int] = defaultdict(int)
    waits, durations = [], []
    for record in records:
        run = record.dagster_run
        per_job[run.job_name] += 1
        statuses[run.status.value] += 1
        if record.start_time:
            waits.append(record.start_time - record.create_timestamp.timestamp())
            if record.end_time:
                durations.append(record.end_time - record.start_time)
    return {
        "runs": len(records),
        "runs_per_hour": len(records) / hours,
        "per_job": dict(sorted(per_job.items(), key=lambda kv: -kv[1])),
        "statuses": dict(statuses),
        "queue_wait_seconds": {k: v for k, v in latency_summary(waits).items() if k != "samples"},
        "run_seconds": {k: v for k, v in latency_summary(durations).items() if k != "samples"},
    }


IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def runs_in_flight(instance: dg.DagsterInstance) -> int:
    return instance.get_runs_count(dg.RunsFilter(statuses=IN_FLIGHT))


def tick_figures(instance: dg.DagsterInstance, since: float) -> dict[str, dict[str, Any]]:
    """Per sensor and schedule: ticks since ``since`` and their durations."""
    figures: dict[str, dict[str, Any]] = {}
    for state in instance.all_instigator_state():
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, after=since, limit=100_000)
        durations = [t.end_timestamp - t.timestamp for t in ticks if t.end_timestamp]
        if not durations:
            continue
        figures[f"{state.instigator_type.value.lower()} {state.instigator_name}"] = {
            "ticks": len(ticks),
            "p50_seconds": percentile(durations, 0.5),
            "max_seconds": max(durations),
            "failed": sum(1 for t in ticks if t.status.value == "FAILURE"),
        }
    return dict(sorted(figures.items()))


def housekeeping(env: dict[str, str], workdir: Path) -> float:
    """`run_retention_job` with a retention of 0 days, as its schedule would run it."""
    config = workdir / "retention.yaml"
    config.write_text("ops:\n  delete_old_dagster_runs:\n    config:\n      max_age_days: 0\n")
    command = [
        sys.executable, "-m", "dagster", "job", "execute",
        "-m", "sunny_pipelines.definitions", "-j", "run_retention_job", "-c", str(config),
    ]  # fmt: skip
    seconds, output = run_process(command, env, "run_retention_job")
    (workdir / "run_retention_job.log").write_text(output)
    return seconds


# --- the benchmark --------------------------------------------------------------------------


def cadence_cycle_minutes() -> int:
    """The longest default sync interval of the registered domains: in one such cycle every user
    falls due for every service at least once."""
    from sunny_pipelines.definitions import DOMAINS

    return max(d.sync.default_interval_seconds for d in DOMAINS if d.sync) // 60


def print_report(figures: dict[str, Any]) -> None:
    users = figures["config"]["users"]
    print(
        "\n=== fleet: {users:,} users, cycle {minutes} min ===".format(
            users=users, minutes=figures["config"]["cycle_minutes"]
        )
    )
    print(
        "users within their cadence (synced within interval + one 5-min tick), at the cycle's end / lowest:"
    )
    lowest = figures["within_cadence_lowest"]
    for service, counts in figures["within_cadence_end"].items():
        share = ratio(counts["within"], counts["rows"])
        print(
            f"  {service:14s} {counts['within']:>6,} of {counts['rows']:>6,} ({share:6.1%})"
            f"   lowest {lowest.get(service, float('nan')):6.1%}"
        )
    print("syncs in the cycle, per hour: achieved (ok) / required by the users' intervals:")
    for service, s in figures["syncs"].items():
        achieved = s.get("ok", 0) / figures["cycle_hours"]
        print(
            f"  {service:14s} {achieved:>9,.0f} / {s.get('required_per_hour', float('nan')):>9,.0f}"
            f" = {ratio(achieved, s.get('required_per_hour', 0)):5.2f}   failed {s.get('failed', 0):,}"
        )
    runs = figures["runs"]
    print(
        f"runs: {runs['runs']:,} in the cycle = {runs['runs_per_hour']:,.0f} per hour; "
        f"statuses {runs['statuses']}"
    )
    wait, took = runs["queue_wait_seconds"], runs["run_seconds"]
    print(
        f"  queue wait p50 {wait['p50']:.1f} s, p95 {wait['p95']:.1f} s, max {wait['max']:.1f} s; "
        f"run p50 {took['p50']:.1f} s, max {took['max']:.1f} s"
    )
    print(f"  per job: {runs['per_job']}")
    print("tick durations (p50 / max, seconds):")
    for name, t in figures["ticks"].items():
        print(
            f"  {name:50s} {t['ticks']:>5} ticks  {t['p50_seconds']:6.2f} / {t['max_seconds']:6.2f}"
            f"  failed {t['failed']}"
        )
    ev = figures["event_log"]
    print(
        f"event_logs rows: {ev['at_cycle_start']:,} at the cycle's start, +{ev['added_in_cycle']:,} "
        f"in the cycle ({ev['added_in_cycle'] / users:.1f} per user); after housekeeping "
        f"{ev['after_housekeeping']:,} (runs {ev['runs_before_housekeeping']:,} -> "
        f"{ev['runs_after_housekeeping']:,}, {ev['housekeeping_seconds']:.0f} s)"
    )
    size = figures["postgresql"]
    print(
        f"PostgreSQL per user: ours {size['ours_bytes_per_user'] / 1024:.1f} KiB; Dagster's "
        f"{size['dagster_bytes_per_user_before_housekeeping'] / 1024:.1f} KiB before housekeeping, "
        f"{size['dagster_bytes_per_user_after_housekeeping'] / 1024:.1f} KiB after"
    )
    largest = {k: f"{v / 2**20:.0f} MiB" for k, v in size["ours"]["largest_tables_bytes"].items()}
    print(f"  our largest tables: {largest}")
    idle, load = figures["change_to_row_idle"], figures["change_to_row_under_load"]
    print(
        f"change -> row (calendar): idle p50 {idle['p50']:.2f} s p95 {idle['p95']:.2f} s (n={idle['n']}); "
        f"under load p50 {load['p50']:.2f} s p95 {load['p95']:.2f} s max {load['max']:.2f} s "
        f"(n={load['n']}, missed {load['missed']}); "
        f"p95 ratio load / idle {ratio(load['p95'], idle['p95']):.2f}x"
    )
    cpu = figures["cpu_seconds"]
    total = cpu.get("machine total (all cores)", 0.0)
    capacity = figures["cycle_hours"] * 3600 * (os.cpu_count() or 1)
    print(
        f"CPU in the cycle: {total:,.0f} s of {capacity:,.0f} s available "
        f"({ratio(total, capacity):.0%} busy); by process:"
    )
    for kind, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
        if kind != "machine total (all cores)":
            print(f"  {kind:34s} {seconds:>8,.0f} s  ({ratio(seconds, total):5.1%})")
    for command, seconds in list(figures["cpu_seconds_other"].items())[:3]:
        print(f"    other: {seconds:,.0f} s  {command}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=5, help="calendar events seeded per user")
    parser.add_argument(
        "--cycle-minutes", type=float, default=None, help="default: the longest sync interval"
    )
    parser.add_argument("--baseline-changes", type=int, default=12, help="changes timed on the idle stack")
    parser.add_argument(
        "--change-every", type=float, default=20.0, help="seconds between changes in the cycle"
    )
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--json", help="where to write the figures (default .sunny/bench/fleet-...)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    cycle_minutes = args.cycle_minutes or cadence_cycle_minutes()
    rng = random.Random(args.seed)

    workdir = Path(tempfile.mkdtemp(prefix="sunny-bench-fleet-"))
    print(f"logs and DAGSTER_HOME under {workdir}", flush=True)
    url = fresh_database()
    dagster_url = fresh_dagster_database()
    key = new_token_key()
    database = DatabaseResource(url=url)
    receiver_port = free_port()
    receiver_url = f"http://127.0.0.1:{receiver_port}"
    gmail_endpoint = f"{receiver_url}/webhooks/google/gmail"
    sandbox_args = [
        "--pubsub-subscription", f"{GMAIL_TOPIC}={gmail_endpoint},{gmail_endpoint}",
        "--attendee-webhook", f"{receiver_url}/webhooks/attendee",
    ]  # fmt: skip
    with sandbox_process(
        workdir, users=args.users, events_per_user=args.events, seed=11, extra_args=sandbox_args
    ) as sandbox:
        grants = fetch_grants(sandbox)
        user_ids = connect_users(database, key, grants)
        os.environ["DAGSTER_PG_URL"] = dagster_url  # the home's instance reads it
        home = deploy_dagster_home(workdir / "dagster_home", user_ids)
        env = app_env(
            home=home, database_url=url, token_key=key, sandbox_url=sandbox,
            webhook_url=receiver_url, gmail_topic=GMAIL_TOPIC,
        )  # fmt: skip
        env |= {
            "DAGSTER_PG_URL": dagster_url,
            "SUNNY_PUBSUB_AUDIENCE": gmail_endpoint,
            "SUNNY_PUBSUB_SERVICE_ACCOUNT": PUBSUB_SERVICE_ACCOUNT,
        }
        run_process(python_command("-m", "sunny_pipelines.pools", "apply"), env, "pools apply")
        receiver = python_command(
            "-m", "sunny_pipelines.webhooks", "--port", str(receiver_port),
            "--no-access-log", "--log-level", "warning",
        )  # fmt: skip
        # The receiver runs from the start: opening a channel sends its first notification.
        receiving = running(
            receiver, env, workdir / "receiver.log", lambda: http_ok(receiver_url + "/healthz")
        )
        with receiving:
            jobs = ", ".join(first_sync_jobs())
            print(f"{len(user_ids):,} users connected; onboarding (first syncs: {jobs})", flush=True)
            onboarding = onboard(env, user_ids, workdir)
            print(f"onboarded in {onboarding:.0f} s", flush=True)

            webserver_port = free_port()
            webserver = f"http://127.0.0.1:{webserver_port}"
            dev = dagster_command(
                "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(webserver_port)
            )
            with (
                running(
                    dev,
                    env,
                    workdir / "dagster_dev.log",
                    lambda: http_ok(webserver + "/server_info"),
                    timeout=300,
                ),
                dg.DagsterInstance.from_config(str(home)) as instance,
            ):
                wait_for(lambda: "SENSOR" in instance.get_daemon_heartbeats(), timeout=180, interval=0.5)
                time.sleep(40)  # every sensor has ticked (the users sensor every 30 s)
                # The idle baseline: schedules paused, the catch-up after onboarding (bot decisions
                # for every user, the first checks) over, no run in flight; only the push path.
                with schedules_paused(webserver):
                    settled = wait_for(lambda: runs_in_flight(instance) == 0, timeout=3600, interval=5)
                    print(f"schedules paused; no run in flight after {settled:.0f} s", flush=True)
                    timer = ChangeTimer(sandbox, grants, database, rng)
                    for i in range(args.baseline_changes):
                        timer.change(f"fleet idle {i}", timeout=300)
                        time.sleep(rng.uniform(2, 6))
                    idle = timer.finish()
                print(f"idle change -> row: p50 {idle['p50']:.2f} s, p95 {idle['p95']:.2f} s", flush=True)

                spread_last_syncs(database, args.seed)
                cycle_start = time.time()
                cycle_start_at = datetime.now(UTC)
                counts_start = dagster_counts(dagster_url)
                timer = ChangeTimer(sandbox, grants, database, rng)
                profile = CpuProfile()
                print(f"cycle of {cycle_minutes:g} min started at {cycle_start_at:%H:%M:%S}", flush=True)
                with profile.sampling():
                    lowest = run_cycle(instance, database, timer, cycle_minutes * 60, args.change_every, rng)
                    cadence_end = within_cadence(database)
                    load = timer.finish()
                hours = (time.time() - cycle_start) / 3600
                syncs = syncs_since(database, cycle_start_at)
                runs = run_figures(instance, cycle_start, hours)
                ticks = tick_figures(instance, cycle_start)
        counts_end = dagster_counts(dagster_url)
        housekeeping_seconds = housekeeping(env, workdir)
        counts_after = dagster_counts(dagster_url)
        ours = our_database_size(database)

    users = len(user_ids)
    figures = {
        "config": {
            "users": users,
            "events_per_user": args.events,
            "cycle_minutes": cycle_minutes,
            "change_every_seconds": args.change_every,
            "seed": args.seed,
            "users_per_run": os.environ.get("SUNNY_USERS_PER_RUN", "default"),
        },
        "onboarding_seconds": onboarding,
        "settled_seconds": settled,
        "cycle_hours": hours,
        "within_cadence_end": cadence_end,
        "within_cadence_lowest": lowest,
        "syncs": syncs,
        "runs": runs,
        "ticks": ticks,
        "event_log": {
            "at_cycle_start": counts_start["event_log_rows"],
            "added_in_cycle": counts_end["event_log_rows"] - counts_start["event_log_rows"],
            "after_housekeeping": counts_after["event_log_rows"],
            "runs_before_housekeeping": counts_end["runs"],
            "runs_after_housekeeping": counts_after["runs"],
            "housekeeping_seconds": housekeeping_seconds,
        },
        "postgresql": {
            "ours": ours,
            "ours_bytes_per_user": ours["database_bytes"] / users,
            "dagster_bytes_per_user_before_housekeeping": counts_end["database_bytes"] / users,
            "dagster_bytes_per_user_after_housekeeping": counts_after["database_bytes"] / users,
        },
        "change_to_row_idle": idle,
        "change_to_row_under_load": load,
        "cpu_seconds": dict(profile.seconds),
        "cpu_seconds_other": dict(sorted(profile.other.items(), key=lambda kv: -kv[1])[:10]),
        "logs": str(workdir),
    }
    print_report(figures)
    write_json(args.json, "fleet", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
