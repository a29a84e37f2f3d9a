"""Google Calendar: events and calendar lists per user, push channels, and their beat entries."""

import dagster as dg

from sunny_pipelines.calendar.assets import CALENDAR_SYNC, POOL, calendar_events, calendar_watch_channels
from sunny_pipelines.calendar.jobs import calendar_channels_job, calendar_sync_job, departed_user_channels_job
from sunny_pipelines.calendar.schedules import (
    calendar_sync_schedule,
    calendar_watch_renewal_schedule,
    calendar_webhook_renewal_schedule,
    departed_user_channels_schedule,
)
from sunny_pipelines.per_user import Domain

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
)
