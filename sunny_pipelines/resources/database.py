"""The database resource: an engine on SUNNY_DATABASE_URL (SQLite under .sunny/ when unset)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from sunny_pipelines.db.engine import get_engine


class DatabaseResource(dg.ConfigurableResource):
    url: str

    @property
    def engine(self) -> Engine:
        return get_engine(self.url)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in a transaction, committed on success and rolled back on error."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def session(self) -> Iterator[Session]:
        with sessionmaker(self.engine, expire_on_commit=False).begin() as session:
            yield session
