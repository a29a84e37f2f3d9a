"""Google Drive: files per user (with text exports for classification), the changes push
channel, and their beat entries."""

import dagster as dg

from sunny_pipelines.drive.assets import DRIVE_SYNC, POOL, drive_files, drive_watch_channels
from sunny_pipelines.drive.channels import CHANNEL_KINDS, RENEW_WITHIN, RENEWAL_EVERY
from sunny_pipelines.drive.jobs import drive_channels_job, drive_sync_job, orphaned_drive_channels_job
from sunny_pipelines.drive.schedules import (
    drive_sync_schedule,
    drive_watch_cleanup_schedule,
    orphaned_drive_channels_schedule,
)
from sunny_pipelines.per_user import Domain, PushChannels

domain = Domain(
    name="drive",
    definitions=dg.Definitions(
        assets=[drive_files, drive_watch_channels],
        jobs=[drive_sync_job, drive_channels_job, orphaned_drive_channels_job],
        schedules=[drive_sync_schedule, drive_watch_cleanup_schedule, orphaned_drive_channels_schedule],
    ),
    sync=DRIVE_SYNC,
    inbox_job=drive_sync_job,
    first_sync_job=drive_sync_job,
    pool=POOL,
    push=PushChannels(
        asset=drive_watch_channels.key,
        service=DRIVE_SYNC.service,
        kinds=CHANNEL_KINDS,
        renew_within=RENEW_WITHIN,
        renewal_every=RENEWAL_EVERY,
        enabled=lambda google: bool(google.push_receiver_url),
    ),
)
