"""Row-level security for the frontend, which reads our tables directly.

The frontend's database sessions act as the `sunny_frontend` role and name their user with
``SET sunny.user_id = '<id>'`` (or, on pooled connections, the transaction-local
``SELECT set_config('sunny.user_id', '<id>', true)``). On every user table a policy for that
role lets it see and change only that user's rows, and no row at all while the setting is unset
or empty. Token columns are not granted to the role at all.

The pipelines connect as the tables' owner (or a superuser), which row-level security does not
apply to: the tables ENABLE row-level security but do not FORCE it, so nothing in the
pipelines changes. A non-owner role without BYPASSRLS sees no rows of these tables.

These helpers are called by migrations (`0009_frontend_row_security` and every later migration
that adds a user table); they are no-ops on SQLite, the local default, which has no roles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, inspect

FRONTEND_ROLE = "sunny_frontend"
USER_ID_SETTING = "sunny.user_id"
POLICY_NAME = "sunny_frontend_rows"
# What the frontend calls to turn a session cookie into a user id before it knows the user.
SESSION_USER_FUNCTION = "sunny_session_user"

# The user the session acts for. `current_setting(..., true)` is NULL while the setting was
# never set, and '' after RESET: both match no row.
CURRENT_USER_ID = f"NULLIF(current_setting('{USER_ID_SETTING}', true), '')"

WRITES = ("INSERT", "UPDATE", "DELETE")


def owned_rows(column: str = "user_id") -> str:
    """Rows whose ``column`` is the session's user."""
    return f"{column} = {CURRENT_USER_ID}"


def meeting_rows(table: str, column: str = "meeting_id") -> str:
    """Rows of a shared meeting (``table.column`` holds the meeting id) in which the session's
    user takes part, through their own `meeting_participants` rows."""
    return (
        "EXISTS (SELECT 1 FROM meeting_participants AS participant "
        f"WHERE participant.meeting_id = {table}.{column} AND participant.user_id = {CURRENT_USER_ID})"
    )


@dataclass(frozen=True)
class FrontendAccess:
    """What the frontend may do with one table.

    ``rows``: the SQL condition naming the rows of the session's user (the policy's USING and
    WITH CHECK). ``writes``: the write privileges granted, from `WRITES`. ``hidden``: columns
    never granted (tokens, secrets); the others are granted column by column, so a column
    added later to such a table stays hidden until a migration grants it. ``updatable``: when
    set, UPDATE is granted on these columns only. ``readable=False`` grants nothing: the policy
    is still in place, so a later grant cannot expose other users' rows.
    """

    rows: str = owned_rows()
    writes: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()
    updatable: tuple[str, ...] | None = None
    readable: bool = True

    def __post_init__(self) -> None:
        unknown = set(self.writes) - set(WRITES)
        if unknown:
            raise ValueError(f"not a write privilege: {sorted(unknown)}")
        if self.updatable is not None and "UPDATE" not in self.writes:
            raise ValueError("updatable columns given without the UPDATE privilege")


def role_statements() -> list[str]:
    """Create `sunny_frontend` once per cluster (roles are global; several databases of the
    cluster migrate it) and refuse one that row-level security would not apply to."""
    return [
        f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{FRONTEND_ROLE}') THEN
        BEGIN
            CREATE ROLE {FRONTEND_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- another database's migration created it meanwhile
        END;
    END IF;
    IF EXISTS (
        SELECT FROM pg_roles WHERE rolname = '{FRONTEND_ROLE}' AND (rolsuper OR rolbypassrls)
    ) THEN
        RAISE EXCEPTION 'role {FRONTEND_ROLE} is a superuser or has BYPASSRLS: '
            'row-level security would not apply to it';
    END IF;
END
$$""",
        f"GRANT USAGE ON SCHEMA public TO {FRONTEND_ROLE}",
    ]


def session_user_statements() -> list[str]:
    """``sunny_session_user(session_id)``: the user of an unexpired session, or NULL.

    The frontend cannot read `user_sessions` before it knows the user (the policy hides every
    row until then), so this one lookup runs with its owner's rights. It answers only for a
    session id the caller already holds: knowing a session id is being that user.
    """
    signature = f"{SESSION_USER_FUNCTION}(session_id text)"
    return [
        f"""
CREATE OR REPLACE FUNCTION {signature} RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT user_id FROM public.user_sessions WHERE id = session_id AND expires_at > now()
$$""",
        f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION {signature} TO {FRONTEND_ROLE}",
    ]


def _quote(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def table_statements(
    table: str, columns: Sequence[str], access: FrontendAccess, quote: Callable[[str], str] = str
) -> list[str]:
    """Enable row-level security on ``table`` (not FORCE: the owner keeps full access), the
    frontend's policy for every command, and its grants. ``columns``: the table's columns now."""
    name = quote(table)
    statements = [
        f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS {POLICY_NAME} ON {name}",
        f"CREATE POLICY {POLICY_NAME} ON {name} AS PERMISSIVE FOR ALL TO {FRONTEND_ROLE} "
        f"USING ({access.rows}) WITH CHECK ({access.rows})",
        f"REVOKE ALL ON {name} FROM {FRONTEND_ROLE}",
    ]
    if not access.readable:
        return statements
    missing = set(access.hidden) - set(columns)
    if missing:
        raise ValueError(f"{table} has no column {sorted(missing)}")
    if access.hidden:
        visible = ", ".join(quote(c) for c in columns if c not in access.hidden)
        statements.append(f"GRANT SELECT ({visible}) ON {name} TO {FRONTEND_ROLE}")
    else:
        statements.append(f"GRANT SELECT ON {name} TO {FRONTEND_ROLE}")
    for privilege in access.writes:
        if privilege == "UPDATE" and access.updatable is not None:
            updatable = ", ".join(quote(c) for c in access.updatable)
            statements.append(f"GRANT UPDATE ({updatable}) ON {name} TO {FRONTEND_ROLE}")
        else:
            statements.append(f"GRANT {privilege} ON {name} TO {FRONTEND_ROLE}")
    return statements


def is_postgresql(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def enable_frontend_access(conn: Connection, table: str, access: FrontendAccess = FrontendAccess()) -> None:
    """Row-level security, the frontend's policy and grants on one table (PostgreSQL only).

    Every migration that creates a user table calls this for it; `test_row_level_security`
    fails for a table with a `user_id` column and no policy.
    """
    if not is_postgresql(conn):
        return
    columns = [c["name"] for c in inspect(conn).get_columns(table)]
    for statement in table_statements(table, columns, access, quote=lambda n: _quote(conn, n)):
        conn.exec_driver_sql(statement)


def disable_frontend_access(conn: Connection, table: str) -> None:
    """Undo `enable_frontend_access` (downgrades)."""
    if not is_postgresql(conn):
        return
    name = _quote(conn, table)
    conn.exec_driver_sql(f"REVOKE ALL ON {name} FROM {FRONTEND_ROLE}")
    conn.exec_driver_sql(f"DROP POLICY IF EXISTS {POLICY_NAME} ON {name}")
    conn.exec_driver_sql(f"ALTER TABLE {name} DISABLE ROW LEVEL SECURITY")


def create_frontend_role(conn: Connection) -> None:
    """The role, its schema usage and the session lookup function (PostgreSQL only)."""
    if not is_postgresql(conn):
        return
    for statement in [*role_statements(), *session_user_statements()]:
        conn.exec_driver_sql(statement)


def drop_frontend_grants(conn: Connection) -> None:
    """Undo `create_frontend_role` in this database. The role itself stays: it is global to the
    cluster and other databases may grant it privileges."""
    if not is_postgresql(conn):
        return
    conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {SESSION_USER_FUNCTION}(text)")
    conn.exec_driver_sql(f"REVOKE USAGE ON SCHEMA public FROM {FRONTEND_ROLE}")
