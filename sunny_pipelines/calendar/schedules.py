"""The beat table's calendar entries: sync (30 min), watch renewal and webhook renewal (6 h)."""

import dagster as dg

from sunny_pipelines.calendar.assets import CALENDAR_SYNC
from sunny_pipelines.calendar.channels import EVENTS_CHANNEL, LIST_CHANNEL, users_with_channel_work
from sunny_pipelines.calendar.jobs import calendar_channels_job, calendar_sync_job, departed_user_channels_job
from sunny_pipelines.per_user.definitions import due_users_schedule, upkeep_schedule

calendar_sync_schedule = due_users_schedule(
    name="calendar_sync_schedule",
    # Every 5 min: a tick only syncs users whose own interval elapsed (by default every 30 min),
    # and the sync optimization may give busy users as little as 5 min.
    cron_schedule="*/5 * * * *",
    job=calendar_sync_job,
    sync=CALENDAR_SYNC,
    description="Google Calendar backstop sync of users whose interval has elapsed (push is the fast path).",
)

calendar_watch_renewal_schedule = upkeep_schedule(
    name="calendar_watch_renewal_schedule",
    cron_schedule="0 */6 * * *",
    job=calendar_channels_job,
    users_needing=lambda conn, now, google: users_with_channel_work(conn, now, [EVENTS_CHANNEL]),
    nothing_to_do="no events channel is missing or expires within 26 h",
    description="Replace events.watch channels that expire within 26 h (channels cannot be extended).",
)

calendar_webhook_renewal_schedule = upkeep_schedule(
    name="calendar_webhook_renewal_schedule",
    cron_schedule="30 */6 * * *",
    job=calendar_channels_job,
    users_needing=lambda conn, now, google: users_with_channel_work(
        conn, now, [LIST_CHANNEL, EVENTS_CHANNEL]
    ),
    nothing_to_do="every user has live calendar channels",
    description="Renew calendarList.watch channels (they announce new calendars) and re-open "
    "channels a user lost.",
)

departed_user_channels_schedule = dg.ScheduleDefinition(
    name="departed_user_channels_schedule",
    cron_schedule="45 */6 * * *",
    job=departed_user_channels_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Stop the calendar push channels of users who left or revoked access.",
)
