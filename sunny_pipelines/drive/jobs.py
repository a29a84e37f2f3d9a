from sunny_pipelines.drive.assets import POOL, drive_files, drive_watch_channels
from sunny_pipelines.drive.channels import CHANNEL_KINDS, drive_stopper
from sunny_pipelines.per_user.channels import departed_channels_job
from sunny_pipelines.per_user.definitions import per_user_job

drive_sync_job = per_user_job("drive_sync", drive_files, "Sync Google Drive for a range of users.")

drive_channels_job = per_user_job(
    "drive_channels",
    drive_watch_channels,
    "Open and replace Google Drive push channels for a range of users.",
)

orphaned_drive_channels_job = departed_channels_job(
    "orphaned_drive_channels_job",
    CHANNEL_KINDS,
    drive_stopper,
    POOL,
    "Stop the Drive push channels of users who left or revoked access (orphaned channels).",
)
