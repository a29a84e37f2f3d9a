"""The beat table's calendar entries: sync (30 min), watch renewal and webhook renewal (6 h)."""

from datetime import UTC, datetime

import dagster as dg

from sunny_pipelines.calendar.channels import EVENTS_CHANNEL, LIST_CHANNEL, users_with_channel_work
from sunny_pipelines.calendar.jobs import calendar_channels_job, calendar_sync_job, departed_user_channels_job
from sunny_pipelines.calendar.sync import SERVICE
from sunny_pipelines.db import sync_state
from sunny_pipelines.partitions import range_run_requests, users
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.vocabulary import Trigger


def _tick(context: dg.ScheduleEvaluationContext) -> str:
    return (context.scheduled_execution_time or datetime.now(UTC)).isoformat()


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
    return range_run_requests(
        keys, due, run_key_prefix=f"calendar:{_tick(context)}", trigger=Trigger.SCHEDULE
    )


def _channel_run_requests(
    context: dg.ScheduleEvaluationContext, database: DatabaseResource, services: list[str], name: str
) -> list[dg.RunRequest]:
    keys = context.instance.get_dynamic_partitions(users.name)
    with database.begin() as conn:
        work = users_with_channel_work(conn, datetime.now(UTC), services)
    return range_run_requests(
        keys,
        work & set(keys),
        run_key_prefix=f"{name}:{_tick(context)}",
        trigger=Trigger.SCHEDULE,
        job_name=calendar_channels_job.name,
    )


@dg.schedule(
    cron_schedule="0 */6 * * *",
    job=calendar_channels_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Replace events.watch channels that expire within 26 h (channels cannot be extended).",
)
def calendar_watch_renewal_schedule(
    context: dg.ScheduleEvaluationContext, database: DatabaseResource
) -> dg.SkipReason | list[dg.RunRequest]:
    requests = _channel_run_requests(context, database, [EVENTS_CHANNEL], "watch-renewal")
    return requests or dg.SkipReason("no events channel is missing or expires within 26 h")


@dg.schedule(
    cron_schedule="30 */6 * * *",
    job=calendar_channels_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Renew calendarList.watch channels (they announce new calendars) and re-open "
    "channels a user lost.",
)
def calendar_webhook_renewal_schedule(
    context: dg.ScheduleEvaluationContext, database: DatabaseResource
) -> dg.SkipReason | list[dg.RunRequest]:
    requests = _channel_run_requests(context, database, [LIST_CHANNEL, EVENTS_CHANNEL], "webhook-renewal")
    return requests or dg.SkipReason("every user has live calendar channels")


departed_user_channels_schedule = dg.ScheduleDefinition(
    name="departed_user_channels_schedule",
    cron_schedule="45 */6 * * *",
    job=departed_user_channels_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Stop the calendar push channels of users who left or revoked access.",
)
