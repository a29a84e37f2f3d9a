"""Engine creation and the database URL: PostgreSQL in production and tests, SQLite locally."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

# The repository root: local state (SQLite file, dev token key) lives in <root>/.sunny.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
LOCAL_STATE_DIR = Path(os.environ.get("SUNNY_HOME", PROJECT_ROOT / ".sunny"))

_engines: dict[tuple[str, str], Engine] = {}
_engines_lock = threading.Lock()


def default_database_url() -> str:
    return f"sqlite:///{LOCAL_STATE_DIR / 'sunny.db'}"


def database_url_from_env() -> str:
    return normalize_url(os.environ.get("SUNNY_DATABASE_URL") or default_database_url())


def normalize_url(url: str) -> str:
    """SQLAlchemy 2.1 maps plain ``postgresql://`` to psycopg 3; we ship psycopg2."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL + busy timeout: a batched run writes from several threads at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# A pooled connection left unused this long is checked with a round trip before it is used again
# (the server, a proxy or a failover may have closed it). One in constant use is not: a sync opens
# several transactions per user, and `pool_pre_ping` (a round trip on every checkout) was about
# 15% of a sync run's time in the fleet profile (benchmarks/bench_fleet.py).
PING_AFTER_IDLE_SECONDS = 10.0


def _note_checkin(_dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
    record.info["checked_in_at"] = time.monotonic()


def _ping_if_idle(dbapi_connection, record, _proxy) -> None:  # type: ignore[no-untyped-def]
    idle_since = record.info.get("checked_in_at")
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
        return  # new, or in constant use
    try:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
        dbapi_connection.rollback()
    except Exception as exc:
        # The pool discards this connection and checks out (or opens) another.
        raise DisconnectionError(
            f"pooled connection idle for {time.monotonic() - idle_since:.0f}s is gone"
        ) from exc


def get_engine(
    url: str | None = None, *, key: str = "", engine_options: Mapping[str, Any] | None = None
) -> Engine:
    """One pooled engine per (URL, ``key``) per process.

    Existing callers pass only the URL and share the default engine. A component that needs
    its own pool or settings (the webhook receiver's timeouts) passes a ``key`` and
    ``engine_options``: keyword arguments of `create_engine` that override the defaults below
    (``connect_args`` is merged). Options apply when the engine is first created for that key.
    """
    url = normalize_url(url or database_url_from_env())
    with _engines_lock:
        engine = _engines.get((url, key))
        if engine is None:
            parsed = make_url(url)
            if parsed.get_backend_name() == "sqlite":
                if parsed.database:
                    Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
                kwargs: dict[str, Any] = {"connect_args": {"timeout": 30, "check_same_thread": False}}
            else:
                kwargs = {"pool_size": 10, "max_overflow": 20}
            options = dict(engine_options or {})
            connect_args = {**kwargs.pop("connect_args", {}), **options.pop("connect_args", {})}
            kwargs.update(options)
            if connect_args:
                kwargs["connect_args"] = connect_args
            engine = create_engine(url, **kwargs)
            if parsed.get_backend_name() == "sqlite":
                event.listen(engine, "connect", _sqlite_pragmas)
            elif not kwargs.get("pool_pre_ping"):
                event.listen(engine, "checkin", _note_checkin)
                event.listen(engine, "checkout", _ping_if_idle)
            _engines[(url, key)] = engine
        return engine


def dispose_engines() -> None:
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
