from collections.abc import Iterator

import dagster as dg

from sunny_pipelines.calendar.assets import POOL, calendar_events, calendar_watch_channels
from sunny_pipelines.calendar.channels import CHANNEL_KINDS
from sunny_pipelines.partitions import users
from sunny_pipelines.resources.channels import stop_departed_channels, web_hook_stopper
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleResource

# In-process: a sync is I/O bound, and a subprocess per step would add seconds to every run.
calendar_sync_job = dg.define_asset_job(
    "calendar_sync",
    selection=[calendar_events],
    partitions_def=users,
    executor_def=dg.in_process_executor,
    description="Sync Google Calendar for a range of users.",
)

calendar_channels_job = dg.define_asset_job(
    "calendar_channels",
    selection=[calendar_watch_channels],
    partitions_def=users,
    executor_def=dg.in_process_executor,
    description="Open, renew and stop Google Calendar push channels for a range of users.",
)


@dg.op(pool=POOL)
def stop_departed_user_channels(
    context: dg.OpExecutionContext, google: GoogleResource, database: DatabaseResource
) -> Iterator[dg.Output[int]]:
    """Stop the calendar channels of users who left, at Google when their grant still allows."""
    stopped = stop_departed_channels(
        context.log,
        google,
        database,
        CHANNEL_KINDS,
        lambda session: web_hook_stopper(session.calendar().channels(), session.execute),
    )
    yield dg.Output(stopped, metadata={"channels_stopped": stopped})


@dg.job(executor_def=dg.in_process_executor, description="Stop push channels of users who left.")
def departed_user_channels_job() -> None:
    stop_departed_user_channels()
