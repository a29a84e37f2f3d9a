from collections.abc import Iterator

import dagster as dg

from sunny_pipelines.calendar.assets import POOL, calendar_events, calendar_watch_channels
from sunny_pipelines.calendar.channels import departed_users_channels, stop_channel
from sunny_pipelines.partitions import users
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleGrantError, GoogleResource
from sunny_pipelines.vocabulary import ChannelStatus, GrantStatus

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
    with database.begin() as conn:
        departed = departed_users_channels(conn)
    for user_id, channel, grant in departed:
        session = None
        if grant == GrantStatus.ACTIVE:
            try:
                session = google.session(user_id)
            except GoogleGrantError as exc:
                context.log.info(
                    f"channel {channel.id}: cannot stop at Google ({exc.reason}); it will expire"
                )
        try:
            stop_channel(session, database, channel, ChannelStatus.STOPPED)
        except Exception as exc:  # keep going: the channel expires at Google by itself
            context.log.warning(f"channel {channel.id} of user {user_id}: {exc}; marked stopped locally")
            stop_channel(None, database, channel, ChannelStatus.STOPPED)
    context.log.info(f"stopped {len(departed)} channels of departed users")
    yield dg.Output(len(departed), metadata={"channels_stopped": len(departed)})


@dg.job(executor_def=dg.in_process_executor, description="Stop push channels of users who left.")
def departed_user_channels_job() -> None:
    stop_departed_user_channels()
