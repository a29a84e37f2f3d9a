"""The beat table's Gmail entries: email processing (every 5 min) and watch renewal (every 4 h)."""

from datetime import UTC, datetime

import dagster as dg

from sunny_pipelines.db import sync_state
from sunny_pipelines.gmail.jobs import departed_gmail_watches_job, email_sync_job, gmail_watch_job
from sunny_pipelines.gmail.sync import SERVICE
from sunny_pipelines.gmail.watch import users_needing_gmail_watch
from sunny_pipelines.partitions import range_run_requests, users
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines.vocabulary import Trigger


def _tick(context: dg.ScheduleEvaluationContext) -> str:
    return (context.scheduled_execution_time or datetime.now(UTC)).isoformat()


@dg.schedule(
    cron_schedule="*/5 * * * *",
    job=email_sync_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Email processing: sync the Gmail of users whose interval has elapsed, then process "
    "their pending emails (push is the fast path).",
)
def email_processing_schedule(
    context: dg.ScheduleEvaluationContext, database: DatabaseResource
) -> dg.SkipReason | list[dg.RunRequest]:
    keys = context.instance.get_dynamic_partitions(users.name)
    with database.begin() as conn:
        due = sync_state.due_users(conn, SERVICE, datetime.now(UTC), keys)
    if not due:
        return dg.SkipReason(f"none of {len(keys)} users is due for a Gmail sync")
    return range_run_requests(keys, due, run_key_prefix=f"email:{_tick(context)}", trigger=Trigger.SCHEDULE)


@dg.schedule(
    cron_schedule="15 */4 * * *",
    job=gmail_watch_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Gmail watch renewal: users.watch for mailboxes whose watch is missing or a day old.",
)
def gmail_watch_renewal_schedule(
    context: dg.ScheduleEvaluationContext, database: DatabaseResource, google: GoogleResource
) -> dg.SkipReason | list[dg.RunRequest]:
    if not google.gmail_pubsub_topic:
        return dg.SkipReason("SUNNY_GMAIL_PUBSUB_TOPIC is not set: Gmail push is off")
    keys = context.instance.get_dynamic_partitions(users.name)
    with database.begin() as conn:
        work = users_needing_gmail_watch(conn, datetime.now(UTC), google.gmail_pubsub_topic) & set(keys)
    if not work:
        return dg.SkipReason("every synced mailbox has a watch renewed within the last day")
    return range_run_requests(
        keys, work, run_key_prefix=f"gmail-watch:{_tick(context)}", trigger=Trigger.SCHEDULE
    )


departed_gmail_watches_schedule = dg.ScheduleDefinition(
    name="departed_gmail_watches_schedule",
    cron_schedule="45 */4 * * *",
    job=departed_gmail_watches_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Stop the Gmail watches of users who left or revoked access.",
)
