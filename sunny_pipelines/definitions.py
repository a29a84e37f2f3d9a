"""The `sunny_pipelines` code location: one Definitions object assembled from the domains."""

import dagster as dg

from sunny_pipelines.accounts.sensors import connected_users_sensor
from sunny_pipelines.calendar.assets import calendar_events
from sunny_pipelines.calendar.jobs import calendar_sync_job
from sunny_pipelines.calendar.schedules import calendar_sync_schedule
from sunny_pipelines.resources import build_resources

defs = dg.Definitions(
    assets=[calendar_events],
    jobs=[calendar_sync_job],
    schedules=[calendar_sync_schedule],
    sensors=[connected_users_sensor],
    resources=build_resources(),
)
