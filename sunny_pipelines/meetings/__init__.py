"""Meetings: Attendee recording bots for the meetings users want recorded, their states and
transcripts, and their beat entries."""

import dagster as dg

from sunny_pipelines.meetings.assets import MEETINGS_SYNC, POOL, meeting_bots
from sunny_pipelines.meetings.jobs import attendee_polling_job, meeting_bots_job, meeting_cleanup_job
from sunny_pipelines.meetings.schedules import (
    attendee_polling_schedule,
    auto_schedule_all_bots_schedule,
    meeting_cleanup_schedule,
)
from sunny_pipelines.meetings.sensors import meetings_after_calendar_sync_sensor
from sunny_pipelines.per_user import Domain

domain = Domain(
    name="meetings",
    definitions=dg.Definitions(
        assets=[meeting_bots],
        jobs=[meeting_bots_job, attendee_polling_job, meeting_cleanup_job],
        schedules=[auto_schedule_all_bots_schedule, attendee_polling_schedule, meeting_cleanup_schedule],
        sensors=[meetings_after_calendar_sync_sensor],
    ),
    sync=MEETINGS_SYNC,
    inbox_job=meeting_bots_job,
    pool=POOL,
)
