from __future__ import annotations

import dagster as dg

from sunny_pipelines.calendar.assets import calendar_events
from sunny_pipelines.partitions import users

# In-process: a sync is I/O bound, and a subprocess per step would add seconds to every run.
calendar_sync_job = dg.define_asset_job(
    "calendar_sync",
    selection=[calendar_events],
    partitions_def=users,
    executor_def=dg.in_process_executor,
    description="Sync Google Calendar for a range of users.",
)
