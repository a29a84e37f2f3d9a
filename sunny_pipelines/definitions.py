"""The `sunny_pipelines` code location: one Definitions object assembled from the domains."""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from sunny_pipelines.accounts.sensors import connected_users_sensor
from sunny_pipelines.calendar.assets import calendar_events, calendar_watch_channels
from sunny_pipelines.calendar.jobs import calendar_channels_job, calendar_sync_job, departed_user_channels_job
from sunny_pipelines.calendar.schedules import (
    calendar_sync_schedule,
    calendar_watch_renewal_schedule,
    calendar_webhook_renewal_schedule,
    departed_user_channels_schedule,
)
from sunny_pipelines.inbox.sensors import webhook_inbox_sensor
from sunny_pipelines.resources import build_resources


def build_defs(resources: Mapping[str, Any] | None = None) -> dg.Definitions:
    """The code location; tests pass resources bound to their own database and sandbox."""
    return dg.Definitions(
        assets=[calendar_events, calendar_watch_channels],
        jobs=[calendar_sync_job, calendar_channels_job, departed_user_channels_job],
        schedules=[
            calendar_sync_schedule,
            calendar_watch_renewal_schedule,
            calendar_webhook_renewal_schedule,
            departed_user_channels_schedule,
        ],
        sensors=[connected_users_sensor, webhook_inbox_sensor],
        resources=dict(resources) if resources is not None else build_resources(),
    )


defs = build_defs()
