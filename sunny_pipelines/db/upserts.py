"""Set-based upserts: one INSERT ... ON CONFLICT statement per batch, on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Table, func
from sqlalchemy.dialects import postgresql, sqlite


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    key_columns: Iterable[str],
    update_columns: Iterable[str] | None = None,
) -> int:
    """Insert ``rows`` or update them on conflict with ``key_columns``. Returns the row count.

    ``update_columns`` defaults to every column present in the rows except the key.
    """
    if not rows:
        return 0
    keys = list(key_columns)
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    columns = list(rows[0].keys())
    updates = [c for c in (update_columns if update_columns is not None else columns) if c not in keys]
    stmt = insert(table)
    set_ = {c: stmt.excluded[c] for c in updates}
    if "updated_at" in table.c and "updated_at" not in set_ and set_:
        set_["updated_at"] = func.now()
    stmt = (
        stmt.on_conflict_do_update(index_elements=keys, set_=set_)
        if set_
        else stmt.on_conflict_do_nothing(index_elements=keys)
    )
    # An executemany of one compiled statement: SQLAlchemy sends it as multi-row VALUES pages
    # ("insertmanyvalues"), so a batch costs a few round trips and one compilation.
    conn.execute(stmt, list(rows))
    return len(rows)


def insert_new(conn: Connection, table: Table, values: dict[str, Any], key_columns: Iterable[str]) -> Any:
    """Insert one row unless its key exists (also when a concurrent transaction inserts it
    first: PostgreSQL waits for it); the new row's primary key, or None."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    primary = list(table.primary_key.columns)[0]
    stmt = insert(table).values(**values).on_conflict_do_nothing(index_elements=list(key_columns))
    return conn.execute(stmt.returning(primary)).scalar()
