"""The beat table's Gmail entries: email processing (every 5 min) and watch renewal (every 4 h)."""

from datetime import datetime

import dagster as dg
from sqlalchemy import Connection

from sunny_pipelines.gmail.assets import GMAIL_SYNC
from sunny_pipelines.gmail.jobs import departed_gmail_watches_job, email_sync_job, gmail_watch_job
from sunny_pipelines.gmail.watch import users_needing_gmail_watch
from sunny_pipelines.per_user.definitions import due_users_schedule, upkeep_schedule
from sunny_pipelines.resources.google import GoogleResource

email_processing_schedule = due_users_schedule(
    name="email_processing_schedule",
    cron_schedule="*/5 * * * *",
    job=email_sync_job,
    sync=GMAIL_SYNC,
    description="Email processing: sync the Gmail of users whose interval has elapsed, then process "
    "their pending emails (push is the fast path).",
)


def _mailboxes_needing_watch(
    conn: Connection, now: datetime, google: GoogleResource
) -> set[str] | dg.SkipReason:
    if not google.gmail_pubsub_topic:
        return dg.SkipReason("SUNNY_GMAIL_PUBSUB_TOPIC is not set: Gmail push is off")
    return users_needing_gmail_watch(conn, now, google.gmail_pubsub_topic)


gmail_watch_renewal_schedule = upkeep_schedule(
    name="gmail_watch_renewal_schedule",
    cron_schedule="15 */4 * * *",
    job=gmail_watch_job,
    users_needing=_mailboxes_needing_watch,
    nothing_to_do="every synced mailbox has a watch renewed within the last day",
    description="Gmail watch renewal: users.watch for mailboxes whose watch is missing or a day old.",
)

departed_gmail_watches_schedule = dg.ScheduleDefinition(
    name="departed_gmail_watches_schedule",
    cron_schedule="45 */4 * * *",
    job=departed_gmail_watches_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Stop the Gmail watches of users who left or revoked access.",
)
