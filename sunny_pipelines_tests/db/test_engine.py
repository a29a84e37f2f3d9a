"""The pool checks a connection that sat idle before reusing it, and not one in constant use."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from sunny_pipelines.db import engine as engine_module
from sunny_pipelines.db.engine import get_engine


def _backend_pid(engine) -> int:
    with engine.begin() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def _terminate(database_url: str, pid: int) -> None:
    with get_engine(database_url).begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def test_an_idle_connection_closed_by_the_server_is_replaced(database_url, monkeypatch):
    engine = get_engine(database_url, key="idle-ping-test", engine_options={"pool_size": 1})
    first = _backend_pid(engine)
    _terminate(database_url, first)  # as a server restart or a proxy's idle timeout would
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    # The next transaction gets a new connection instead of the dead one's error.
    second = _backend_pid(engine)
    assert second != first
    engine.dispose()


def test_a_connection_in_constant_use_is_not_pinged(database_url, monkeypatch):
    # No round trip before reuse: a connection the server closed within the idle window fails
    # that one transaction (the caller records the failure), and the pool then replaces it.
    engine = get_engine(database_url, key="hot-connection-test", engine_options={"pool_size": 1})
    first = _backend_pid(engine)
    assert _backend_pid(engine) == first  # reused
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 3600.0)
    _terminate(database_url, first)
    with pytest.raises(OperationalError):
        _backend_pid(engine)
    assert _backend_pid(engine) != first
    engine.dispose()
