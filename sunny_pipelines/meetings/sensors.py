"""Bot decisions right after calendar syncs: a calendar push reaches the decision without
waiting for a schedule."""

import dagster as dg

from sunny_pipelines.meetings.assets import CALENDAR_EVENTS
from sunny_pipelines.meetings.jobs import meeting_bots_job
from sunny_pipelines.partitions import range_run_requests, users
from sunny_pipelines.vocabulary import Trigger

# Materializations read per tick: a batched calendar run writes one per user.
EVENTS_PER_TICK = 2000


def calendar_changed(record: dg.EventLogRecord) -> bool:
    """Whether a calendar_events materialization found changes (a sync without its count is
    taken as changed). At 10,000 users most scheduled syncs find none, and deciding again for
    them was a bot_scheduling run per calendar run (fleet benchmark)."""
    materialization = record.asset_materialization
    count = materialization.metadata.get("change_count") if materialization else None
    return count is None or bool(count.value)


@dg.sensor(
    job=meeting_bots_job,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests bot decisions for the users whose calendar_events partition was just "
    "materialized, batched into ranges.",
)
def meetings_after_calendar_sync_sensor(
    context: dg.SensorEvaluationContext,
) -> dg.SensorResult | dg.SkipReason:
    records = context.instance.fetch_materializations(
        CALENDAR_EVENTS, limit=EVENTS_PER_TICK, cursor=context.cursor, ascending=True
    )
    if not records.records:
        return dg.SkipReason("no calendar sync since the last tick")
    synced = {r.partition_key for r in records.records if r.partition_key and calendar_changed(r)}
    if not synced:
        # Read past them all the same; time-driven decisions are the half-hourly schedule's.
        return dg.SensorResult(
            skip_reason=f"{len(records.records)} calendar syncs since the last tick found no change",
            cursor=records.cursor,
        )
    keys = context.instance.get_dynamic_partitions(users.name)
    requests = range_run_requests(
        keys,
        synced & set(keys),
        run_key_prefix=f"after-calendar:{records.cursor}",
        trigger=Trigger.UPSTREAM,
        job_name=meeting_bots_job.name,
    )
    return dg.SensorResult(run_requests=requests, cursor=records.cursor)
