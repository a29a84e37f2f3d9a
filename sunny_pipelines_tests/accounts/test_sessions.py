"""Session cleanup against PostgreSQL: expired sessions go, in batches; live ones stay."""

from datetime import UTC, datetime, timedelta

import dagster as dg
from sqlalchemy import select

from sunny_pipelines.accounts.sessions import delete_expired_sessions
from sunny_pipelines.db.models import UserSession
from sunny_pipelines.definitions import build_defs


def test_expired_sessions_are_deleted_in_batches_and_live_ones_kept(resources, database, connected_users):
    now = datetime.now(UTC)
    user = connected_users[0]["id"]
    with database.begin() as conn:
        conn.execute(
            UserSession.__table__.insert(),
            [
                {"id": f"old-{i}", "user_id": user, "expires_at": now - timedelta(minutes=i + 1)}
                for i in range(25)
            ]
            + [{"id": "live", "user_id": user, "expires_at": now + timedelta(days=1)}],
        )
    assert delete_expired_sessions(database, now, batch_size=10) == 25
    with database.begin() as conn:
        assert conn.execute(select(UserSession.id)).scalars().all() == ["live"]

    defs = build_defs(resources)
    schedule = defs.get_schedule_def("session_cleanup_schedule")
    assert schedule.cron_schedule == "0 6 * * *"
    with dg.instance_for_test() as instance:
        assert defs.resolve_job_def(schedule.job_name).execute_in_process(instance=instance).success
