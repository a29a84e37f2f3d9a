from sunny_pipelines.calendar.assets import POOL, calendar_events, calendar_watch_channels
from sunny_pipelines.calendar.channels import CHANNEL_KINDS
from sunny_pipelines.per_user.channels import departed_channels_job
from sunny_pipelines.per_user.definitions import per_user_job
from sunny_pipelines.resources.channels import web_hook_stopper

calendar_sync_job = per_user_job(
    "calendar_sync", calendar_events, "Sync Google Calendar for a range of users."
)

calendar_channels_job = per_user_job(
    "calendar_channels",
    calendar_watch_channels,
    "Open, renew and stop Google Calendar push channels for a range of users.",
)

departed_user_channels_job = departed_channels_job(
    "departed_user_channels_job",
    CHANNEL_KINDS,
    lambda session: web_hook_stopper(session.calendar().channels(), session.execute),
    POOL,
    "Stop the calendar push channels of users who left or revoked access.",
)
