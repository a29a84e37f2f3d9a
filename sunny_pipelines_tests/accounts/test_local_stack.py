"""The embedded-defaults path a developer takes: SQLite migrated by the CLI, sandbox users
connected by `connect-users` over HTTP, and a calendar sync into SQLite."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import select

from sunny_pipelines.calendar.sync import sync_user_calendars
from sunny_pipelines.db.engine import PROJECT_ROOT
from sunny_pipelines.db.models import GoogleConnection, SyncState, User
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines_tests.calendar.helpers import stored_rows, truth_rows


def run_cli(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", *args], env=env, cwd=PROJECT_ROOT, check=True, capture_output=True)


def test_cli_migrates_sqlite_connects_users_and_a_sync_lands_there(tmp_path, sandbox, cipher):
    url = f"sqlite:///{tmp_path / 'sunny.db'}"
    env = {**os.environ, "SUNNY_DATABASE_URL": url, "SUNNY_TOKEN_KEY": cipher.key}
    run_cli("sunny_pipelines.db", "upgrade", env=env)
    run_cli("sunny_pipelines.sandbox", "connect-users", "--url", sandbox.base_url, env=env)

    database = DatabaseResource(url=url)
    users = sandbox.world.list_users()
    with database.begin() as conn:
        assert [u.id for u in conn.execute(select(User.id).order_by(User.id))] == [u["id"] for u in users]
        grant = conn.execute(
            select(GoogleConnection.__table__).where(GoogleConnection.user_id == users[0]["id"])
        ).one()
        assert grant.status == "active"
        assert cipher.decrypt(grant.refresh_token) == users[0]["refresh_token"]
        assert users[0]["refresh_token"] not in grant.refresh_token
        interval = conn.execute(
            select(SyncState.interval_seconds).where(SyncState.service == "calendar")
        ).scalar()
        assert interval == 30 * 60

    google = GoogleResource(database=database, cipher=cipher, sandbox_url=sandbox.base_url)
    sync_user_calendars(google.session(users[0]["id"]), database, users[0]["id"])
    assert stored_rows(database, users[0]["id"]) == truth_rows(sandbox, users[0])
