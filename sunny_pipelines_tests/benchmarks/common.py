"""Shared pieces of the benchmarks: a scratch PostgreSQL database, processes (sandbox, receiver,
`dagster dev`) started on free ports and stopped cleanly, the real Google client pointed at the
sandbox, sample ordering, statistics and the JSON report.

Only the project's stable surfaces are used: the CLIs, `GET /sandbox/users`, the real Google
API client, `store_google_grants` and the resources' constructors.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from sunny_pipelines.db import migrate
from sunny_pipelines.db.engine import PROJECT_ROOT, normalize_url
from sunny_pipelines.db.grants import store_google_grants
from sunny_pipelines.partitions import TRIGGER_TAG, range_tags
from sunny_pipelines.resources.cipher import TokenCipher
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.vocabulary import Trigger
from sunny_pipelines_tests.stack import free_port, http_ok, running

BENCH_DATABASE_URL = normalize_url(
    os.environ.get("SUNNY_BENCH_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/sunny_bench")
)
DEFAULT_JSON_DIR = PROJECT_ROOT / ".sunny" / "bench"
# The Dagster asset's default number of users worked on at once (SUNNY_USER_CONCURRENCY).
DEFAULT_USER_CONCURRENCY = 8
# Tables that hold the users and their grants: kept between samples. Everything else is emptied.
KEPT_TABLES = {"users", "google_connections", "alembic_version"}


def user_concurrency() -> int:
    return int(os.environ.get("SUNNY_USER_CONCURRENCY", str(DEFAULT_USER_CONCURRENCY)))


# --- database -------------------------------------------------------------------------------


def empty_database(url: str) -> str:
    """Drop and recreate the database ``url`` names, empty."""
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()
    return url


def fresh_database(url: str = BENCH_DATABASE_URL) -> str:
    """Drop and recreate the benchmark database, migrated to head."""
    migrate.upgrade(empty_database(url))
    return url


def new_token_key() -> str:
    return Fernet.generate_key().decode()


def connect_users(database: DatabaseResource, token_key: str, grants: list[dict[str, Any]]) -> list[str]:
    """Store the sandbox users' grants as a completed Google consent would; returns their ids in
    the sandbox's order (the order their `users` partitions are added in)."""
    with database.begin() as conn:
        store_google_grants(conn, TokenCipher(key=token_key), grants)
    return [grant["id"] for grant in grants]


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


# --- processes ------------------------------------------------------------------------------


def python_command(*args: str) -> list[str]:
    return [sys.executable, *args]


@contextmanager
def sandbox_process(
    workdir: Path,
    *,
    users: int,
    events_per_user: int,
    seed: int = 42,
    env: dict[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[str]:
    """`python -m sunny_pipelines.sandbox` in its own process on a free port; yields its base URL.
    ``extra_args`` go to the sandbox's command line (such as ``--pubsub-subscription``)."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = python_command(
        "-m", "sunny_pipelines.sandbox", "--port", str(port), "--users", str(users),
        "--events-per-user", str(events_per_user), "--seed", str(seed), "--log-level", "WARNING",
        *extra_args,
    )  # fmt: skip
    ready = lambda: http_ok(base_url + "/sandbox/users")  # noqa: E731
    with running(command, env or dict(os.environ), workdir / "sandbox.log", ready):
        yield base_url


def fetch_grants(sandbox_url: str) -> list[dict[str, Any]]:
    """The sandbox's users with valid tokens (`GET /sandbox/users`)."""
    response = requests.get(sandbox_url.rstrip("/") + "/sandbox/users", timeout=60)
    response.raise_for_status()
    return response.json()


def run_process(command: list[str], env: dict[str, str], what: str) -> tuple[float, str]:
    """Run ``command`` to completion; its wall time (process start to exit) and its output.
    Exits the benchmark, showing the output's tail, if the command failed."""
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        sys.stderr.write(output[-4000:])
        raise SystemExit(f"{what} failed with exit code {completed.returncode}")
    return elapsed, output


def dagster_job_command(job: str, user_ids: Sequence[str], trigger: Trigger | None = None) -> list[str]:
    """`dagster job execute` of ``job`` as one batched run over all of ``user_ids`` (a partition
    range in the order they were added), tagged with ``trigger`` as a sensor would tag it."""
    tags = range_tags(user_ids[0], user_ids[-1])
    if trigger is not None:
        tags[TRIGGER_TAG] = trigger.value
    return [
        sys.executable, "-m", "dagster", "job", "execute",
        "-m", "sunny_pipelines.definitions", "-j", job, "--tags", json.dumps(tags),
    ]  # fmt: skip


def alternating_orders(sides: Sequence[str], samples: int) -> list[list[str]]:
    """ABBA order: A B, B A, A B, ... so that neither side always runs first (or on a warmer cache)."""
    forward = list(sides)
    return [forward if i % 2 == 0 else forward[::-1] for i in range(samples)]


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1): a value that was actually observed."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Median and spread (min, max, quartiles) of one side's samples."""
    values = [float(v) for v in values]
    if not values:
        return {"n": 0}
    if len(values) > 1:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    else:
        q1 = q3 = values[0]
    return {
        "n": len(values),
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "q1": q1,
        "q3": q3,
        "mean": statistics.fmean(values),
        "samples": values,
    }


def latency_summary(values: Sequence[float]) -> dict[str, Any]:
    values = [float(v) for v in values]
    return {
        "n": len(values),
        "p50": percentile(values, 0.50),
        "p95": percentile(values, 0.95),
        "p99": percentile(values, 0.99),
        "max": max(values) if values else math.nan,
        "min": min(values) if values else math.nan,
        "samples": values,
    }


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def format_summary(name: str, summary: dict[str, Any], unit: str = "s", digits: int = 2) -> str:
    if not summary.get("n"):
        return f"{name}: no samples"
    fmt = f"{{:,.{digits}f}}"
    return (
        f"{name}: median {fmt.format(summary['median'])} {unit} "
        f"(min {fmt.format(summary['min'])}, max {fmt.format(summary['max'])}, "
        f"IQR {fmt.format(summary['q1'])}–{fmt.format(summary['q3'])}; n={summary['n']})"
    )


# --- report ---------------------------------------------------------------------------------


def default_json_path(benchmark: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return DEFAULT_JSON_DIR / f"{benchmark}-{stamp}.json"


def write_json(path: Path | str | None, benchmark: str, figures: dict[str, Any]) -> Path:
    """Write ``figures`` (plus when, where and on what) to ``path``; print and return the path."""
    target = Path(path) if path else default_json_path(benchmark)
    target.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": benchmark,
        "finished_at": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": sys.platform},
        **figures,
    }
    target.write_text(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
    print(f"figures written to {target}", flush=True)
    return target


def sampled_sides(
    sides: Sequence[str], samples: int, warmup: bool, run_one: Callable[[str], dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """A warm-up of each side (not counted), then ``samples`` rounds in alternating order; each
    round's result is printed as it comes."""
    if warmup:
        for side in sides:
            run_one(side)
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    for i, order in enumerate(alternating_orders(sides, samples), 1):
        for side in order:
            result = run_one(side)
            runs[side].append(result)
            print(f"  sample {i} {side}: {json.dumps(result)}", flush=True)
    return runs


def compare_sides(runs: dict[str, list[dict[str, Any]]], labels: dict[str, str]) -> dict[str, Any]:
    """Median and spread of each side's figures named in ``labels`` (figure -> printed label), and
    the ratio of the `wall_seconds` medians dagster / loop; printed and returned."""
    figures: dict[str, Any] = {}
    for side, results in runs.items():
        figures[side] = {name: summarize([r[name] for r in results]) for name in labels}
        for name, label in labels.items():
            print(format_summary(f"{side}: {label}", figures[side][name]))
    figures["ratio_of_medians_dagster_over_loop"] = ratio(
        figures["dagster"]["wall_seconds"]["median"], figures["loop"]["wall_seconds"]["median"]
    )
    print(f"ratio of medians dagster / loop: {figures['ratio_of_medians_dagster_over_loop']:.2f}x")
    return figures
