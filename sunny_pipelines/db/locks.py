"""One sync of a (user, service) at a time, across runs and processes.

PostgreSQL: a session-level advisory lock keyed on both, held on a connection of its own for the
length of the user's sync; the server releases it if the process dies. SQLite (local use only):
an exclusive file lock under `.sunny/locks/`, one file per bucket of (user, service), which may
serialize a little more than needed; the kernel releases it if the process dies.
"""

from __future__ import annotations

import fcntl
import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from sunny_pipelines.db.engine import LOCAL_STATE_DIR

POLL_SECONDS = 0.1
SQLITE_LOCK_BUCKETS = 256


class SyncLockBusy(Exception):
    """Another run held the (user, service) sync lock for longer than we were willing to wait."""

    def __init__(self, user_id: str, service: str, waited_seconds: float) -> None:
        super().__init__(
            f"another run has been syncing {service} of user {user_id} for {waited_seconds:.0f}s or more; "
            "this run did not sync it"
        )
        self.user_id = user_id
        self.service = service


def _key(user_id: str, service: str) -> str:
    return f"sunny-sync:{service}:{user_id}"


@contextmanager
def sync_lock(engine: Engine, user_id: str, service: str, wait_seconds: float) -> Iterator[None]:
    """Hold the (user, service) sync lock for the block; wait at most ``wait_seconds`` for it,
    then raise `SyncLockBusy`."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, _key(user_id, service), wait_seconds) as acquired:
            if not acquired:
                raise SyncLockBusy(user_id, service, wait_seconds)
            yield
    else:
        with _file_lock(_key(user_id, service), wait_seconds) as acquired:
            if not acquired:
                raise SyncLockBusy(user_id, service, wait_seconds)
            yield


def _poll(try_once, wait_seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + wait_seconds
    while not try_once():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


@contextmanager
def _advisory_lock(engine: Engine, key: str, wait_seconds: float) -> Iterator[bool]:
    conn = engine.connect()
    try:

        def try_once() -> bool:
            acquired = conn.execute(
                text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))"), {"key": key}
            ).scalar_one()
            conn.commit()  # hold the lock, not an open transaction
            return bool(acquired)

        acquired = _poll(try_once, wait_seconds)
        try:
            yield acquired
        finally:
            if acquired:
                try:
                    conn.execute(text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"), {"key": key})
                    conn.commit()
                except Exception:
                    # A pooled connection must never go back holding the lock: drop it instead
                    # (the server releases a session's locks when it ends).
                    conn.invalidate()
                    raise
    finally:
        conn.close()


@contextmanager
def _file_lock(key: str, wait_seconds: float, directory: Path | None = None) -> Iterator[bool]:
    directory = directory or LOCAL_STATE_DIR / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    bucket = int(hashlib.sha256(key.encode()).hexdigest(), 16) % SQLITE_LOCK_BUCKETS
    with open(directory / f"sync-{bucket:03d}.lock", "a+") as handle:

        def try_once() -> bool:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        acquired = _poll(try_once, wait_seconds)
        try:
            yield acquired
        finally:
            if acquired:
                fcntl.flock(handle, fcntl.LOCK_UN)
