"""The beat table's Attendee entries: bot scheduling for all users (`auto_schedule_all_bots`),
Attendee polling (every 10 min) and the cleanup of completed meetings (daily)."""

import dagster as dg

from sunny_pipelines.meetings.assets import MEETINGS_SYNC
from sunny_pipelines.meetings.jobs import attendee_polling_job, meeting_bots_job, meeting_cleanup_job
from sunny_pipelines.per_user.definitions import due_users_schedule

auto_schedule_all_bots_schedule = due_users_schedule(
    name="auto_schedule_all_bots_schedule",
    cron_schedule="15,45 * * * *",
    job=meeting_bots_job,
    sync=MEETINGS_SYNC,
    description="Bot decisions of users not decided for 30 min (calendar syncs trigger them at once).",
)

attendee_polling_schedule = dg.ScheduleDefinition(
    name="attendee_polling_schedule",
    cron_schedule="*/10 * * * *",
    job=attendee_polling_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Attendee polling: refresh every live bot and store ready transcripts (webhooks are "
    "the fast path).",
)

meeting_cleanup_schedule = dg.ScheduleDefinition(
    name="meeting_cleanup_schedule",
    cron_schedule="30 3 * * *",
    job=meeting_cleanup_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Finalize completed meetings and delete bot data past the retention period.",
)
