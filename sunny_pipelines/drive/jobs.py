from collections.abc import Iterator

import dagster as dg

from sunny_pipelines.drive.assets import POOL, drive_files, drive_watch_channels
from sunny_pipelines.drive.channels import CHANNEL_KINDS, drive_stopper
from sunny_pipelines.partitions import users
from sunny_pipelines.resources.channels import stop_departed_channels
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleResource

# In-process: a sync is I/O bound, and a subprocess per step would add seconds to every run.
drive_sync_job = dg.define_asset_job(
    "drive_sync",
    selection=[drive_files],
    partitions_def=users,
    executor_def=dg.in_process_executor,
    description="Sync Google Drive for a range of users.",
)

drive_channels_job = dg.define_asset_job(
    "drive_channels",
    selection=[drive_watch_channels],
    partitions_def=users,
    executor_def=dg.in_process_executor,
    description="Open and replace Google Drive push channels for a range of users.",
)


@dg.op(pool=POOL)
def stop_orphaned_drive_channels(
    context: dg.OpExecutionContext, google: GoogleResource, database: DatabaseResource
) -> Iterator[dg.Output[int]]:
    """Stop the Drive channels of users who left or revoked access (orphaned channels)."""
    stopped = stop_departed_channels(context.log, google, database, CHANNEL_KINDS, drive_stopper)
    yield dg.Output(stopped, metadata={"channels_stopped": stopped})


@dg.job(executor_def=dg.in_process_executor, description="Stop Drive push channels of users who left.")
def orphaned_drive_channels_job() -> None:
    stop_orphaned_drive_channels()
