"""The embedded-defaults path a developer takes: SQLite migrated by the CLI, sandbox users
connected by `connect-users` over HTTP, and the calendar, Drive and Gmail syncs run by
`dagster job execute` into SQLite (the per-user protocol with its file locks, not PostgreSQL's
advisory locks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg
from sqlalchemy import select

from sunny_pipelines.db.engine import PROJECT_ROOT
from sunny_pipelines.db.models import Email, GoogleConnection, SyncState, User
from sunny_pipelines.partitions import range_tags
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines_tests.calendar.helpers import stored_rows, truth_rows
from sunny_pipelines_tests.drive import helpers as drive
from sunny_pipelines_tests.gmail import mailbox as gmail
from sunny_pipelines_tests.stack import dagster_command, dagster_home


def run_cli(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", *args], env=env, cwd=PROJECT_ROOT, check=True, capture_output=True)


def test_cli_migrates_sqlite_connects_users_and_a_sync_lands_there(tmp_path, sandbox, cipher):
    url = f"sqlite:///{tmp_path / 'sunny.db'}"
    users = sandbox.world.list_users()
    keys = [u["id"] for u in users]
    env = {
        **os.environ,
        "SUNNY_DATABASE_URL": url,
        "SUNNY_TOKEN_KEY": cipher.key,
        "SUNNY_SANDBOX_URL": sandbox.base_url,
        "SUNNY_HOME": str(tmp_path),
        "DAGSTER_HOME": str(dagster_home(tmp_path / "dagster_home", keys)),
    }
    run_cli("sunny_pipelines.db", "upgrade", env=env)
    run_cli("sunny_pipelines.sandbox", "connect-users", "--url", sandbox.base_url, env=env)

    database = DatabaseResource(url=url)
    with database.begin() as conn:
        assert [u.id for u in conn.execute(select(User.id).order_by(User.id))] == keys
        grant = conn.execute(
            select(GoogleConnection.__table__).where(GoogleConnection.user_id == keys[0])
        ).one()
        assert grant.status == "active"
        assert cipher.decrypt(grant.refresh_token) == users[0]["refresh_token"]
        assert users[0]["refresh_token"] not in grant.refresh_token

    for job in ("calendar_sync", "drive_sync", "email_sync"):
        subprocess.run(
            dagster_command(
                "dagster", "job", "execute", "-m", "sunny_pipelines.definitions", "-j", job,
                "--tags", json.dumps(range_tags(keys[0], keys[-1])),
            ),
            env=env, cwd=PROJECT_ROOT, check=True, capture_output=True,
        )  # fmt: skip
    for user in users:
        assert stored_rows(database, user["id"]) == truth_rows(sandbox, user)
        assert drive.stored_rows(database, user["id"]) == drive.truth_rows(sandbox, user)
        assert gmail.stored_rows(database, user["id"]) == gmail.truth_rows(sandbox, user, days=30)
    with database.begin() as conn:
        assert set(conn.execute(select(Email.processing_status)).scalars()) <= {"processed", "failed"}
    with database.begin() as conn:
        intervals = conn.execute(
            select(SyncState.interval_seconds).where(SyncState.service == "calendar")
        ).scalars()
        assert list(intervals) == [30 * 60] * len(users)  # the calendar domain's default
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        for asset in ("calendar_events", "drive_files", "emails"):
            assert set(instance.get_materialized_partitions(dg.AssetKey(asset))) == set(keys)
