"""`calendar_events`: each user's Google Calendar events, one partition per user."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from sunny_pipelines.batched import for_each_user
from sunny_pipelines.calendar.sync import SERVICE, sync_user_calendars
from sunny_pipelines.db import sync_state
from sunny_pipelines.partitions import MAX_USERS_PER_RUN, TRIGGER_TAG, users
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleResource


def users_to_sync(context: dg.AssetExecutionContext, database: DatabaseResource, service: str) -> list[str]:
    """The run's users that have work: all of them, unless a schedule launched it (then: the due ones)."""
    keys = list(context.partition_keys)
    if context.run.tags.get(TRIGGER_TAG) != "schedule":
        return keys
    with database.begin() as conn:
        due = sync_state.due_users(conn, service, datetime.now(UTC), keys)
    return [key for key in keys if key in due]


@dg.asset(
    partitions_def=users,
    output_required=False,
    backfill_policy=dg.BackfillPolicy.multi_run(MAX_USERS_PER_RUN),
    pool="calendar",
    group_name="calendar",
    kinds={"google", "sql"},
    description="Each user's Google Calendar events (instances of recurring series expanded), "
    "synced incrementally with Google's sync tokens. Cancelled events are kept as deleted rows.",
)
def calendar_events(
    context: dg.AssetExecutionContext, google: GoogleResource, database: DatabaseResource
) -> Iterator[dg.AssetMaterialization]:
    def sync_one(user_id: str) -> dict[str, Any]:
        session = google.session(user_id)
        return sync_user_calendars(session, database, user_id).metadata()

    yield from for_each_user(context, users_to_sync(context, database, SERVICE), sync_one)
