"""Calendar assets, one partition per user: `calendar_events` and `calendar_watch_channels`."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from sunny_pipelines.batched import for_each_user
from sunny_pipelines.calendar.channels import CALENDAR_LIST, ensure_calendar_channels
from sunny_pipelines.calendar.sync import SERVICE, sync_user_calendars
from sunny_pipelines.db import sync_state
from sunny_pipelines.inbox import rows as inbox_rows
from sunny_pipelines.partitions import MAX_USERS_PER_RUN, TRIGGER_TAG, users
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleResource

# Inbox rows a calendar sync answers: any successful sync of the user covers them.
CALENDAR_INBOX_SOURCES = ["google_calendar"]

# Per-user assets of batched runs: one materialization per user that succeeded (see batched.py),
# UI backfills split into runs of at most 50 users, the old "calendar" Celery queue as a pool.
PER_USER_CALENDAR_ASSET: dict[str, Any] = {
    "partitions_def": users,
    "output_required": False,
    "backfill_policy": dg.BackfillPolicy.multi_run(MAX_USERS_PER_RUN),
    "pool": "calendar",
    "group_name": "calendar",
    "kinds": {"google", "sql"},
}


@dg.asset(
    **PER_USER_CALENDAR_ASSET,
    description="Each user's Google Calendar events (instances of recurring series expanded), "
    "synced incrementally with Google's sync tokens. Cancelled events are kept as deleted rows.",
)
def calendar_events(
    context: dg.AssetExecutionContext, google: GoogleResource, database: DatabaseResource
) -> Iterator[dg.AssetMaterialization]:
    trigger = context.run.tags.get(TRIGGER_TAG)
    due: set[str] = set()
    if trigger == "schedule":
        with database.begin() as conn:
            due = sync_state.due_users(conn, SERVICE, datetime.now(UTC), context.partition_keys)

    def sync_one(user_id: str) -> dict[str, Any] | None:
        with database.begin() as conn:
            claimed = inbox_rows.claim(
                conn, user_id, CALENDAR_INBOX_SOURCES, context.run_id, datetime.now(UTC)
            )
        # Inbox runs work on users with notifications, schedule runs on due users, others on all.
        if not claimed and (trigger == "inbox" or (trigger == "schedule" and user_id not in due)):
            return None
        refresh_list = any(row.payload.get("service") == CALENDAR_LIST for row in claimed)
        try:
            session = google.session(user_id)
            result = sync_user_calendars(session, database, user_id, refresh_list=refresh_list)
        except Exception as exc:
            with database.begin() as conn:
                inbox_rows.mark_failed(
                    conn, claimed, context.run_id, f"{type(exc).__name__}: {exc}", datetime.now(UTC)
                )
            raise
        with database.begin() as conn:
            inbox_rows.mark_done(conn, [row.id for row in claimed], datetime.now(UTC))
        metadata = {**result.metadata(), "inbox_rows_done": len(claimed)}
        if google.webhook_base_url:
            channels = ensure_calendar_channels(session, database, user_id, google.webhook_base_url)
            metadata.update(channels.metadata())
        return metadata

    yield from for_each_user(context, list(context.partition_keys), sync_one)


@dg.asset(
    **PER_USER_CALENDAR_ASSET,
    description="Each user's Google Calendar push channels: one events.watch channel per calendar "
    "and one calendarList.watch channel, replaced before they expire.",
)
def calendar_watch_channels(
    context: dg.AssetExecutionContext, google: GoogleResource, database: DatabaseResource
) -> Iterator[dg.AssetMaterialization]:
    if not google.webhook_base_url:
        context.log.warning("SUNNY_WEBHOOK_BASE_URL is not set: no push channels are opened")
        return

    def renew(user_id: str) -> dict[str, Any] | None:
        result = ensure_calendar_channels(google.session(user_id), database, user_id, google.webhook_base_url)
        if context.run.tags.get(TRIGGER_TAG) == "schedule" and not (result.opened or result.stopped):
            return None
        return result.metadata()

    yield from for_each_user(context, list(context.partition_keys), renew)
