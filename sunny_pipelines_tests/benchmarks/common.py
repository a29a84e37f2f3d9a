"""Shared set-up for benchmarks: a scratch PostgreSQL database and a served sandbox."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from sunny_pipelines.db import migrate
from sunny_pipelines.db.engine import normalize_url

BENCH_DATABASE_URL = normalize_url(
    os.environ.get("SUNNY_BENCH_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/sunny_bench")
)


def fresh_database(url: str = BENCH_DATABASE_URL) -> str:
    """Drop and recreate the benchmark database, migrated to head."""
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()
    migrate.upgrade(url)
    return url


def new_token_key() -> str:
    return Fernet.generate_key().decode()


@contextmanager
def timed(results: dict[str, float], name: str):
    started = time.perf_counter()
    yield
    results[name] = time.perf_counter() - started
