"""The beat table's "Calendar sync" entry: every 30 minutes, batched runs over due users."""

from datetime import UTC, datetime

import dagster as dg

from sunny_pipelines.calendar.jobs import calendar_sync_job
from sunny_pipelines.calendar.sync import SERVICE
from sunny_pipelines.db import sync_state
from sunny_pipelines.partitions import range_run_requests, users
from sunny_pipelines.resources.database import DatabaseResource


@dg.schedule(
    cron_schedule="*/30 * * * *",
    job=calendar_sync_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Google Calendar backstop sync of users whose interval has elapsed (push is the fast path).",
)
def calendar_sync_schedule(
    context: dg.ScheduleEvaluationContext, database: DatabaseResource
) -> dg.SkipReason | list[dg.RunRequest]:
    keys = context.instance.get_dynamic_partitions(users.name)
    with database.begin() as conn:
        due = sync_state.due_users(conn, SERVICE, datetime.now(UTC), keys)
    if not due:
        return dg.SkipReason(f"none of {len(keys)} users is due for a calendar sync")
    tick = (context.scheduled_execution_time or datetime.now(UTC)).isoformat()
    return range_run_requests(keys, due, run_key_prefix=f"calendar:{tick}", trigger="schedule")
