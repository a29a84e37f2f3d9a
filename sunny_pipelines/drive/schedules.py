"""The beat table's Drive entries: sync (every 15 min) and watch cleanup (daily 01:00)."""

from datetime import UTC, datetime

import dagster as dg

from sunny_pipelines.db import sync_state
from sunny_pipelines.drive.channels import users_needing_drive_channel
from sunny_pipelines.drive.jobs import drive_channels_job, drive_sync_job, orphaned_drive_channels_job
from sunny_pipelines.drive.sync import SERVICE
from sunny_pipelines.partitions import range_run_requests, users
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.vocabulary import Trigger


def _tick(context: dg.ScheduleEvaluationContext) -> str:
    return (context.scheduled_execution_time or datetime.now(UTC)).isoformat()


@dg.schedule(
    cron_schedule="*/15 * * * *",
    job=drive_sync_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Google Drive backstop sync of users whose interval has elapsed (push is the fast path).",
)
def drive_sync_schedule(
    context: dg.ScheduleEvaluationContext, database: DatabaseResource
) -> dg.SkipReason | list[dg.RunRequest]:
    keys = context.instance.get_dynamic_partitions(users.name)
    with database.begin() as conn:
        due = sync_state.due_users(conn, SERVICE, datetime.now(UTC), keys)
    if not due:
        return dg.SkipReason(f"none of {len(keys)} users is due for a Drive sync")
    return range_run_requests(keys, due, run_key_prefix=f"drive:{_tick(context)}", trigger=Trigger.SCHEDULE)


@dg.schedule(
    cron_schedule="0 1 * * *",
    job=drive_channels_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Drive watch cleanup: open missing changes channels and replace those expiring "
    "within 2 days (channels cannot be extended).",
)
def drive_watch_cleanup_schedule(
    context: dg.ScheduleEvaluationContext, database: DatabaseResource
) -> dg.SkipReason | list[dg.RunRequest]:
    keys = context.instance.get_dynamic_partitions(users.name)
    with database.begin() as conn:
        work = users_needing_drive_channel(conn, datetime.now(UTC)) & set(keys)
    if not work:
        return dg.SkipReason("every synced user has a Drive channel that outlives 2 days")
    return range_run_requests(
        keys, work, run_key_prefix=f"drive-channels:{_tick(context)}", trigger=Trigger.SCHEDULE
    )


orphaned_drive_channels_schedule = dg.ScheduleDefinition(
    name="orphaned_drive_channels_schedule",
    cron_schedule="0 1 * * *",
    job=orphaned_drive_channels_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Drive watch cleanup: stop the changes channels of users who left or revoked access.",
)
