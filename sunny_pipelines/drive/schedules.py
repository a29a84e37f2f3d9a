"""The beat table's Drive entries: sync (every 15 min) and watch cleanup (daily 01:00)."""

import dagster as dg

from sunny_pipelines.drive.assets import DRIVE_SYNC
from sunny_pipelines.drive.channels import users_needing_drive_channel
from sunny_pipelines.drive.jobs import drive_channels_job, drive_sync_job, orphaned_drive_channels_job
from sunny_pipelines.per_user.definitions import due_users_schedule, upkeep_schedule

drive_sync_schedule = due_users_schedule(
    name="drive_sync_schedule",
    # Every 5 min: a tick only syncs users whose own interval elapsed (by default every 15 min),
    # and the sync optimization may give busy users as little as 5 min.
    cron_schedule="*/5 * * * *",
    job=drive_sync_job,
    sync=DRIVE_SYNC,
    description="Google Drive backstop sync of users whose interval has elapsed (push is the fast path).",
)

drive_watch_cleanup_schedule = upkeep_schedule(
    name="drive_watch_cleanup_schedule",
    cron_schedule="0 1 * * *",
    job=drive_channels_job,
    users_needing=lambda conn, now, google: users_needing_drive_channel(conn, now),
    nothing_to_do="every synced user has a Drive channel that outlives 2 days",
    description="Drive watch cleanup: open missing changes channels and replace those expiring "
    "within 2 days (channels cannot be extended).",
)

orphaned_drive_channels_schedule = dg.ScheduleDefinition(
    name="orphaned_drive_channels_schedule",
    cron_schedule="0 1 * * *",
    job=orphaned_drive_channels_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Drive watch cleanup: stop the changes channels of users who left or revoked access.",
)
