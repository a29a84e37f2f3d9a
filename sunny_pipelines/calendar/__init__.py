"""Google Calendar: events and calendar lists per user, push channels, and their beat entries."""

import dagster as dg

from sunny_pipelines.calendar.assets import CALENDAR_SYNC, POOL, calendar_events, calendar_watch_channels
from sunny_pipelines.calendar.channels import CHANNEL_KINDS, RENEW_WITHIN, RENEWAL_EVERY
from sunny_pipelines.calendar.jobs import calendar_channels_job, calendar_sync_job, departed_user_channels_job
from sunny_pipelines.calendar.schedules import (
    calendar_sync_schedule,
    calendar_watch_renewal_schedule,
    calendar_webhook_renewal_schedule,
    departed_user_channels_schedule,
)
from sunny_pipelines.per_user import Domain, PushChannels

domain = Domain(
    name="calendar",
    definitions=dg.Definitions(
        assets=[calendar_events, calendar_watch_channels],
        jobs=[calendar_sync_job, calendar_channels_job, departed_user_channels_job],
        schedules=[
            calendar_sync_schedule,
            calendar_watch_renewal_schedule,
            calendar_webhook_renewal_schedule,
            departed_user_channels_schedule,
        ],
    ),
    sync=CALENDAR_SYNC,
    inbox_job=calendar_sync_job,
    first_sync_job=calendar_sync_job,
    pool=POOL,
    push=PushChannels(
        asset=calendar_watch_channels.key,
        service=CALENDAR_SYNC.service,
        kinds=CHANNEL_KINDS,
        renew_within=RENEW_WITHIN,
        renewal_every=RENEWAL_EVERY,
        enabled=lambda google: bool(google.push_receiver_url),
    ),
)
