"""Row-level security for the frontend, against PostgreSQL: a session that is `sunny_frontend`
with ``SET sunny.user_id = 'A'`` reads and changes only A's rows, sees nothing without the
setting, and cannot read a token column at all.

Every table gets two users' rows generically from `Base.metadata`, so a table added later is
covered without a change here; a user table that lacks the policy fails
`test_every_user_table_has_row_security_and_a_frontend_policy`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Table, create_engine, inspect, pool, select, text
from sqlalchemy.exc import DBAPIError

from sunny_pipelines.db import migrate
from sunny_pipelines.db.models import (
    Base,
    Meeting,
    MeetingBot,
    MeetingParticipant,
    MeetingSummary,
    MeetingTranscript,
    User,
)
from sunny_pipelines.db.row_security import FRONTEND_ROLE, POLICY_NAME, USER_ID_SETTING

USERS = ("ua", "ub")
# What the frontend writes: its users' settings and sessions. Every other table is read-only.
WRITABLE = {"recording_rules", "meeting_overrides", "user_sessions"}
# Pipeline plumbing the frontend never reads (the policy is there all the same).
NOT_GRANTED = {"webhook_inbox", "oauth_states"}
# Columns no frontend session can read.
SECRET_COLUMNS = {"google_connections": ("access_token", "refresh_token"), "watch_channels": ("token_hash",)}
INSUFFICIENT_PRIVILEGE = "42501"


def user_tables() -> list[Table]:
    """Every table that holds user data: `users` and each table with a `user_id` column."""
    return [t for t in Base.metadata.sorted_tables if "user_id" in t.columns or t.name == "users"]


def _value(table: Table, column: Any, user: str) -> Any:
    """A value of ``column``'s type, unique per (table, user) for strings."""
    # A TypeDecorator (UtcDateTime) answers `object`; its implementation knows.
    python_type = getattr(column.type, "impl", column.type).python_type
    if python_type is str:
        length = getattr(column.type, "length", None) or 64
        return f"{user}-{table.name}-{column.name}"[-length:]
    if python_type is bool:
        return False
    if python_type is int:
        return 1
    if python_type is float:
        return 0.5
    if python_type is datetime:
        return datetime.now(UTC) + timedelta(days=1)
    if python_type is dict:
        return {}
    if python_type is list:
        return []
    raise AssertionError(f"no test value for {table.name}.{column.name} ({column.type})")


def _row(table: Table, user: str, meeting_id: int | None) -> dict[str, Any]:
    """One row of ``table`` belonging to ``user`` (through its meeting for shared tables)."""
    row: dict[str, Any] = {}
    for column in table.columns:
        targets = {fk.target_fullname for fk in column.foreign_keys}
        if column.name == "user_id" or "users.id" in targets or (table.name, column.name) == ("users", "id"):
            row[column.name] = user
        elif "meetings.id" in targets:
            row[column.name] = meeting_id
        elif column.primary_key and column.autoincrement in (True, "auto") and not column.foreign_keys:
            if column.type.python_type is int:
                continue  # serial
            row[column.name] = _value(table, column, user)
        elif (column.primary_key or not column.nullable or column.unique) and (
            column.default is None and column.server_default is None
        ):
            row[column.name] = _value(table, column, user)
    return row


def _primary_key(table: Table) -> list[str]:
    return [c.name for c in table.primary_key.columns]


def covered_tables() -> list[Table]:
    """User tables, and the shared meeting tables the frontend reads through participation."""
    user_table_names = {t.name for t in user_tables()}
    return [
        t
        for t in Base.metadata.sorted_tables
        if t.name in user_table_names
        or t.name == Meeting.__tablename__
        or any(fk.target_fullname == "meetings.id" for fk in t.foreign_keys)
    ]


@pytest.fixture
def two_users_everywhere(database) -> dict[str, dict[str, set[tuple]]]:
    """One row per user in every covered table (a meeting per user, and the rows that reference
    it); returns, per table and user, the primary keys of that user's rows."""
    owned: dict[str, dict[str, set[tuple]]] = {}
    meeting_of: dict[str, int] = {}
    with database.begin() as conn:
        for table in covered_tables():
            owned[table.name] = {}
            for user in USERS:
                insert = table.insert().values(_row(table, user, meeting_of.get(user)))
                key = tuple(conn.execute(insert.returning(*table.primary_key.columns)).one())
                owned[table.name][user] = {key}
                if table.name == Meeting.__tablename__:
                    meeting_of[user] = key[0]
    return owned


@pytest.fixture
def frontend_engine(database):
    """Connections opened for one check each (no pool: a session-level SET never outlives it)."""
    engine = create_engine(database.url, poolclass=pool.NullPool)
    yield engine
    engine.dispose()


@contextmanager
def frontend(engine, user: str | None) -> Iterator[Connection]:
    """A frontend session as the frontend opens it: ``SET ROLE sunny_frontend`` and
    ``SET sunny.user_id`` (when ``user`` is given); its transaction is rolled back at the end."""
    with engine.connect() as conn:
        conn.exec_driver_sql(f"SET ROLE {FRONTEND_ROLE}")
        if user is not None:
            conn.exec_driver_sql(f"SET {USER_ID_SETTING} = '{user}'")
        try:
            yield conn
        finally:
            conn.rollback()


def _visible(engine, user: str | None, table: Table) -> set[tuple]:
    columns = ", ".join(f'"{c}"' for c in _primary_key(table))
    with frontend(engine, user) as conn:
        return {tuple(r) for r in conn.exec_driver_sql(f'SELECT {columns} FROM "{table.name}"')}


def _refused(engine, user: str | None, statement: str, params: dict | None = None) -> str:
    """The SQLSTATE of the error ``statement`` raises in a frontend session."""
    with frontend(engine, user) as conn, pytest.raises(DBAPIError) as refused:
        conn.execute(text(statement), params or {})
    return refused.value.orig.pgcode


def test_every_user_table_has_row_security_and_a_frontend_policy(database):
    """A table added with a `user_id` column and no policy fails here (and so in CI)."""
    with database.begin() as conn:
        security = {
            name: (enabled, forced)
            for name, enabled, forced in conn.execute(
                text(
                    "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                    "WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
                )
            )
        }
        policies = {
            row.tablename: row
            for row in conn.execute(
                text("SELECT * FROM pg_policies WHERE :role = ANY(roles)"), {"role": FRONTEND_ROLE}
            )
        }
    missing = []
    for table in user_tables():
        policy = policies.get(table.name)
        if security[table.name] != (True, False) or policy is None:
            missing.append(table.name)
            continue
        # One policy for every command, with the same rule for rows read and rows written.
        assert (policy.policyname, policy.cmd, policy.permissive) == (POLICY_NAME, "ALL", "PERMISSIVE")
        assert policy.qual and policy.with_check and USER_ID_SETTING in policy.qual
    # ENABLE without FORCE: the owner (the pipelines' role) is not subject to the policies.
    assert missing == [], f"user tables without row-level security for {FRONTEND_ROLE}: {missing}"


def test_no_table_is_granted_to_the_frontend_without_row_security(database):
    with database.begin() as conn:
        granted = conn.execute(
            text(
                "SELECT c.relname, c.relrowsecurity, "
                "  EXISTS (SELECT FROM pg_policies p WHERE p.tablename = c.relname AND :role = ANY(p.roles)) "
                "FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' "
                "AND (has_table_privilege(:role, c.oid, 'SELECT,INSERT,UPDATE,DELETE') "
                "     OR has_any_column_privilege(:role, c.oid, 'SELECT,INSERT,UPDATE'))"
            ),
            {"role": FRONTEND_ROLE},
        ).all()
    assert {name for name, *_ in granted} >= {"users", "calendar_events", "meetings"}
    assert [name for name, secured, policy in granted if not (secured and policy)] == []


@pytest.mark.parametrize("user", USERS)
def test_a_user_reads_only_their_own_rows_in_every_table(two_users_everywhere, frontend_engine, user):
    other = next(u for u in USERS if u != user)
    for table in covered_tables():
        if table.name in NOT_GRANTED:
            statement = f'SELECT 1 FROM "{table.name}"'
            assert _refused(frontend_engine, user, statement) == INSUFFICIENT_PRIVILEGE, table.name
            continue
        seen = _visible(frontend_engine, user, table)
        assert seen == two_users_everywhere[table.name][user], table.name
        assert not seen & two_users_everywhere[table.name][other], table.name


def test_nothing_is_visible_without_the_setting(two_users_everywhere, frontend_engine):
    for table in covered_tables():
        if table.name in NOT_GRANTED:
            continue
        assert _visible(frontend_engine, None, table) == set(), table.name
        # After RESET the setting reads '' (not NULL): still no user.
        assert _visible(frontend_engine, "", table) == set(), table.name


def test_a_user_cannot_change_or_delete_another_users_rows(two_users_everywhere, frontend_engine):
    for table in covered_tables():
        if table.name == "users":
            continue  # test_the_user_row_allows_only_name_and_time_zone_changes
        key = _primary_key(table)[0]
        if table.name not in WRITABLE:
            for statement in (
                f'UPDATE "{table.name}" SET "{key}" = "{key}"',
                f'DELETE FROM "{table.name}"',
                f'INSERT INTO "{table.name}" DEFAULT VALUES',
            ):
                assert _refused(frontend_engine, "ua", statement) == INSUFFICIENT_PRIVILEGE, statement
            continue
        with frontend(frontend_engine, "ua") as conn:
            # Unfiltered statements, as a frontend bug would send them: only A's rows move.
            assert conn.exec_driver_sql(f'UPDATE "{table.name}" SET user_id = user_id').rowcount == 1
            # Handing one's own row to another user is refused too (WITH CHECK).
            with pytest.raises(DBAPIError) as moved, conn.begin_nested():
                conn.exec_driver_sql(f"UPDATE \"{table.name}\" SET user_id = 'ub'")
            assert moved.value.orig.pgcode == INSUFFICIENT_PRIVILEGE
            assert conn.exec_driver_sql(f'DELETE FROM "{table.name}"').rowcount == 1
            conn.exec_driver_sql("RESET ROLE")
            columns = ", ".join(f'"{c}"' for c in _primary_key(table))
            left = {tuple(r) for r in conn.exec_driver_sql(f'SELECT {columns} FROM "{table.name}"')}
            assert left == two_users_everywhere[table.name]["ub"], table.name


def test_a_user_can_write_only_rows_of_their_own(two_users_everywhere, frontend_engine):
    expires = datetime.now(UTC) + timedelta(days=1)
    inserts = {
        "recording_rules": ("INSERT INTO recording_rules (user_id, rules) VALUES (:u, '{}')", {}),
        "meeting_overrides": (
            "INSERT INTO meeting_overrides (user_id, calendar_id, event_id, override) "
            "VALUES (:u, 'primary', 'e-new', 'always')",
            {},
        ),
        "user_sessions": (
            "INSERT INTO user_sessions (id, user_id, expires_at) VALUES ('s-' || :u, :u, :t)",
            {"t": expires},
        ),
    }
    assert set(inserts) == WRITABLE
    for table, (statement, params) in inserts.items():
        if table == "recording_rules":
            with frontend(frontend_engine, "ua") as conn:  # A's own rules row exists: replace it
                conn.execute(text("DELETE FROM recording_rules"))
                conn.execute(text(statement), {"u": "ua", **params})
        else:
            with frontend(frontend_engine, "ua") as conn:
                conn.execute(text(statement), {"u": "ua", **params})
        # A row for B, written from A's session, violates the policy.
        assert _refused(frontend_engine, "ua", statement, {"u": "ub", **params}) == INSUFFICIENT_PRIVILEGE
        # And without a user, nothing can be written at all.
        assert _refused(frontend_engine, None, statement, {"u": "ua", **params}) == INSUFFICIENT_PRIVILEGE


def test_the_user_row_allows_only_name_and_time_zone_changes(two_users_everywhere, frontend_engine):
    with frontend(frontend_engine, "ua") as conn:
        assert conn.exec_driver_sql("UPDATE users SET timezone = 'Europe/Paris', name = 'A'").rowcount == 1
        assert conn.exec_driver_sql("UPDATE users SET name = 'B' WHERE id = 'ub'").rowcount == 0
    assert _refused(frontend_engine, "ua", "UPDATE users SET status = 'deleted'") == INSUFFICIENT_PRIVILEGE
    assert _refused(frontend_engine, "ua", "DELETE FROM users") == INSUFFICIENT_PRIVILEGE
    statement = "INSERT INTO users (id, email) VALUES ('ua2', 'x@example.com')"
    assert _refused(frontend_engine, "ua", statement) == INSUFFICIENT_PRIVILEGE


def test_token_columns_are_not_readable_at_all(two_users_everywhere, frontend_engine):
    for table, columns in SECRET_COLUMNS.items():
        for column in columns:
            statement = f"SELECT {column} FROM {table}"
            assert _refused(frontend_engine, "ua", statement) == INSUFFICIENT_PRIVILEGE, statement
        assert _refused(frontend_engine, "ua", f"SELECT * FROM {table}") == INSUFFICIENT_PRIVILEGE
    with frontend(frontend_engine, "ua") as conn:
        row = conn.exec_driver_sql("SELECT user_id, status, last_error, scopes FROM google_connections").one()
        assert row.user_id == "ua"
        assert conn.exec_driver_sql("SELECT service, status, expires_at FROM watch_channels").all()


def test_a_shared_meeting_is_readable_by_each_participant_only(database, frontend_engine):
    start = datetime.now(UTC) + timedelta(days=1)
    with database.begin() as conn:
        for user in ("ua", "ub", "uc"):
            conn.execute(User.__table__.insert().values(id=user, email=f"{user}@example.com"))
        shared, private = (
            conn.execute(
                Meeting.__table__.insert()
                .values(dedup_key=key, meeting_url=f"https://meet.example/{key}", start_time=start)
                .returning(Meeting.id)
            ).scalar_one()
            for key in ("shared", "private")
        )
        conn.execute(
            MeetingParticipant.__table__.insert(),
            [
                {"meeting_id": meeting, "user_id": user, "calendar_id": "primary", "event_id": "e"}
                | {"want_bot": True, "decision_code": "hosted", "reason": "rules"}
                for meeting, user in ((shared, "ua"), (shared, "ub"), (private, "ub"))
            ],
        )
        for meeting in (shared, private):
            bot = f"bot_{meeting}"
            conn.execute(
                MeetingBot.__table__.insert().values(
                    bot_id=bot, meeting_id=meeting, deduplication_key=bot, state="ended"
                )
            )
            conn.execute(
                MeetingTranscript.__table__.insert().values(
                    meeting_id=meeting, bot_id=bot, sequence=0, timestamp_ms=0, text="hello"
                )
            )
            # B's run produced both summaries; A, a participant of the shared meeting, reads it.
            summary = {"meeting_id": meeting, "user_id": "ub", "status": "summarized"}
            conn.execute(MeetingSummary.__table__.insert().values(summary))
    queries = {
        "meetings": "SELECT id FROM meetings",
        "meeting_bots": "SELECT meeting_id FROM meeting_bots",
        "meeting_transcripts": "SELECT meeting_id FROM meeting_transcripts",
        "meeting_summaries": "SELECT meeting_id FROM meeting_summaries",
    }
    for user, expected in (("ua", {shared}), ("ub", {shared, private}), ("uc", set()), (None, set())):
        with frontend(frontend_engine, user) as conn:
            for table, query in queries.items():
                assert set(conn.exec_driver_sql(query).scalars()) == expected, (user, table)
            # The other participant's decision about the shared meeting stays theirs.
            assert set(conn.exec_driver_sql("SELECT user_id FROM meeting_participants").scalars()) <= {user}
    assert _refused(frontend_engine, "ua", "DELETE FROM meetings") == INSUFFICIENT_PRIVILEGE


def test_a_session_cookie_resolves_to_its_user_before_the_user_is_known(database, frontend_engine):
    now = datetime.now(UTC)
    with database.begin() as conn:
        conn.execute(User.__table__.insert().values(id="ua", email="a@example.com"))
        conn.execute(
            text(
                "INSERT INTO user_sessions (id, user_id, expires_at) "
                "VALUES ('live', 'ua', :l), ('old', 'ua', :o)"
            ),
            {"l": now + timedelta(hours=1), "o": now - timedelta(hours=1)},
        )
    with frontend(frontend_engine, None) as conn:
        resolve = "SELECT sunny_session_user(:s)"
        assert conn.execute(text(resolve), {"s": "live"}).scalar() == "ua"
        assert conn.execute(text(resolve), {"s": "old"}).scalar() is None
        assert conn.execute(text(resolve), {"s": "forged"}).scalar() is None
        # The sessions themselves stay hidden until the user is set.
        assert conn.exec_driver_sql("SELECT id FROM user_sessions").all() == []


def test_the_pipelines_role_keeps_full_access(two_users_everywhere, database):
    """The pipelines connect as the tables' owner: the policies do not apply to them."""
    with database.begin() as conn:
        for table in user_tables():
            assert conn.execute(select(table)).all(), table.name
        assert conn.execute(text("SELECT access_token FROM google_connections")).all()


def test_on_sqlite_the_migration_does_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'local.db'}"
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0009"
        assert "users" in inspect(conn).get_table_names()
    engine.dispose()


def test_the_migration_goes_down_and_up_again(database_url):
    """On a database of its own: undoing the migration drops its policies, grants and function
    (the cluster-wide role stays), and migrating again restores them."""
    server, name = database_url.rsplit("/", 1)
    name += "_rls_downgrade"
    url = f"{server}/{name}"
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = create_engine(url, poolclass=pool.NullPool)
    before = ScriptDirectory.from_config(migrate.alembic_config(url)).get_revision("0009").down_revision

    def secured() -> set[str]:
        with engine.connect() as conn:
            return set(
                conn.execute(
                    text("SELECT tablename FROM pg_policies WHERE policyname = :p"), {"p": POLICY_NAME}
                ).scalars()
            )

    try:
        migrate.upgrade(url)
        tables = secured()
        assert tables >= {t.name for t in covered_tables()}
        migrate.downgrade(url, before)
        assert secured() == set()
        with engine.connect() as conn:
            # (PostgreSQL 15 grants USAGE on a new database's schema to PUBLIC: look at our grant.)
            acl = conn.exec_driver_sql("SELECT nspacl::text FROM pg_namespace WHERE nspname = 'public'")
            assert FRONTEND_ROLE not in (acl.scalar() or "")
            assert conn.exec_driver_sql("SELECT to_regproc('sunny_session_user')").scalar() is None
        migrate.upgrade(url)
        assert secured() == tables
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
