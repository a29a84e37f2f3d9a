"""Session cleanup (the old `cleanup_expired_sessions()`): expired frontend sessions are deleted
in bounded batches, so a large backlog never holds one long transaction or lock."""

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
from sqlalchemy import delete, select

from sunny_pipelines.db.models import UserSession
from sunny_pipelines.resources.database import DatabaseResource

BATCH_SIZE = 5_000


def delete_expired_sessions(database: DatabaseResource, now: datetime, batch_size: int = BATCH_SIZE) -> int:
    """Delete the sessions expired at ``now``, ``batch_size`` per transaction; how many."""
    deleted = 0
    while True:
        with database.begin() as conn:
            batch = select(UserSession.id).where(UserSession.expires_at <= now).limit(batch_size)
            count = conn.execute(
                delete(UserSession).where(UserSession.id.in_(batch.scalar_subquery()))
            ).rowcount
        deleted += count
        if count < batch_size:
            return deleted


@dg.op(pool="auth")
def cleanup_expired_sessions(
    context: dg.OpExecutionContext, database: DatabaseResource
) -> Iterator[dg.Output[int]]:
    deleted = delete_expired_sessions(database, datetime.now(UTC))
    context.log.info(f"deleted {deleted} expired sessions")
    yield dg.Output(deleted, metadata={"sessions_deleted": deleted})


@dg.job(executor_def=dg.in_process_executor, description="Delete expired frontend sessions.")
def session_cleanup_job() -> None:
    cleanup_expired_sessions()


session_cleanup_schedule = dg.ScheduleDefinition(
    name="session_cleanup_schedule",
    cron_schedule="0 6 * * *",
    job=session_cleanup_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Session cleanup: delete expired frontend sessions in bounded batches.",
)
