from datetime import UTC, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select

from sunny_pipelines.db import sync_state
from sunny_pipelines.db.grants import store_google_grants
from sunny_pipelines.db.models import Base, CalendarEvent, GoogleConnection, SyncState, User
from sunny_pipelines.db.upserts import upsert

CONTRACT_TABLES = {
    "users",
    "google_connections",
    "user_sessions",
    "sync_state",
    "watch_channels",
    "calendar_events",
    "webhook_inbox",
}


def grant(user_id: str, email: str) -> dict:
    return {
        "id": user_id,
        "email": email,
        "name": "Test",
        "timezone": "Europe/Paris",
        "access_token": f"at-{user_id}",
        "refresh_token": f"rt-{user_id}",
        "expires_in": 3600,
        "scopes": ["https://www.googleapis.com/auth/calendar.readonly"],
    }


def test_migrations_create_the_contract_tables(database):
    tables = set(inspect(database.engine).get_table_names())
    assert tables >= CONTRACT_TABLES


def test_migrations_and_models_agree(database):
    with database.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_grants_are_stored_encrypted_and_reconnect_reactivates(database, cipher):
    with database.begin() as conn:
        store_google_grants(conn, cipher, [grant("u1", "a@example.com")])
        conn.execute(GoogleConnection.__table__.update().values(status="needs_reauth", last_error="revoked"))
    with database.begin() as conn:
        store_google_grants(conn, cipher, [grant("u1", "a@example.com")])
        row = conn.execute(select(GoogleConnection)).one()
    assert row.status == "active" and row.last_error is None
    assert "at-u1" not in row.access_token and "rt-u1" not in row.refresh_token
    assert cipher.decrypt(row.refresh_token) == "rt-u1"


def test_upsert_is_one_statement_per_batch_and_updates(database, cipher):
    with database.begin() as conn:
        store_google_grants(conn, cipher, [grant("u1", "a@example.com")])
    rows = [
        {"user_id": "u1", "calendar_id": "c", "event_id": f"e{i}", "status": "confirmed", "summary": "v1"}
        for i in range(1200)
    ]
    with database.begin() as conn:
        assert upsert(conn, CalendarEvent.__table__, rows, ["user_id", "calendar_id", "event_id"]) == 1200
        rows[0]["summary"] = "v2"
        upsert(conn, CalendarEvent.__table__, rows[:1], ["user_id", "calendar_id", "event_id"])
        assert conn.execute(select(func.count()).select_from(CalendarEvent)).scalar() == 1200
        assert (
            conn.execute(select(CalendarEvent.summary).where(CalendarEvent.event_id == "e0")).scalar() == "v2"
        )


def test_due_users_follow_interval_and_grant_status(database, cipher):
    now = datetime.now(UTC)
    with database.begin() as conn:
        store_google_grants(
            conn, cipher, [grant("u1", "a@x.com"), grant("u2", "b@x.com"), grant("u3", "c@x.com")]
        )
        sync_state.record_success(conn, "u2", "calendar", 3)
        conn.execute(
            GoogleConnection.__table__.update()
            .where(GoogleConnection.user_id == "u3")
            .values(status="needs_reauth")
        )
        assert sync_state.due_users(conn, "calendar", now) == {"u1"}
        assert sync_state.due_users(conn, "calendar", now + timedelta(minutes=31)) == {"u1", "u2"}
        conn.execute(User.__table__.update().where(User.id == "u1").values(status="deleted"))
        assert sync_state.due_users(conn, "calendar", now) == set()


def test_failures_count_up_and_success_resets(database, cipher):
    with database.begin() as conn:
        store_google_grants(conn, cipher, [grant("u1", "a@x.com")])
        sync_state.record_failure(conn, "u1", "drive", "boom")
        sync_state.record_failure(conn, "u1", "drive", "boom again")
        state = conn.execute(select(SyncState).where(SyncState.service == "drive")).one()
        assert (state.consecutive_failures, state.last_error) == (2, "boom again")
        sync_state.record_success(conn, "u1", "drive", 5, cursor="tok")
        state = conn.execute(select(SyncState).where(SyncState.service == "drive")).one()
        assert (state.consecutive_failures, state.last_error, state.cursor) == (0, None, "tok")


def test_reconnecting_keeps_sync_state(database, cipher):
    with database.begin() as conn:
        store_google_grants(conn, cipher, [grant("u1", "a@x.com")])
        sync_state.record_success(conn, "u1", "calendar", 4, cursor="kept")
        conn.execute(SyncState.__table__.update().values(interval_seconds=600))
        store_google_grants(conn, cipher, [grant("u1", "a@x.com")])
        state = conn.execute(select(SyncState).where(SyncState.service == "calendar")).one()
    assert (state.interval_seconds, state.cursor) == (600, "kept")
