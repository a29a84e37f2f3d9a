"""Calendar assets, one partition per user: `calendar_events` and `calendar_watch_channels`."""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from sunny_pipelines.calendar.channels import LIST_CHANNEL, ensure_calendar_channels
from sunny_pipelines.calendar.sync import SERVICE, sync_user_calendars
from sunny_pipelines.inbox.rows import InboxRow
from sunny_pipelines.per_user import UserSync, best_effort, per_user_asset, sync_users
from sunny_pipelines.per_user.channels import renew_user_channels
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines.vocabulary import Source

CALENDAR_SYNC = UserSync(
    service=SERVICE,
    inbox_sources=frozenset({Source.GOOGLE_CALENDAR}),
    default_interval_seconds=30 * 60,  # the old beat table's "Calendar sync, every 30 min"
)

POOL = "calendar"  # the old "calendar" Celery queue
PER_USER_CALENDAR_ASSET = per_user_asset(pool=POOL, group_name="calendar", kinds={"google", "sql"})


@dg.asset(
    **PER_USER_CALENDAR_ASSET,
    description="Each user's Google Calendar events (instances of recurring series expanded), "
    "synced incrementally with Google's sync tokens. Cancelled events are kept as deleted rows.",
)
def calendar_events(
    context: dg.AssetExecutionContext, google: GoogleResource, database: DatabaseResource
) -> Iterator[dg.AssetMaterialization]:
    def sync_one(user_id: str, claimed: list[InboxRow]) -> dict[str, Any]:
        refresh_list = any(row.payload.get("service") == LIST_CHANNEL for row in claimed)
        session = google.session(user_id)
        metadata = sync_user_calendars(session, database, user_id, refresh_list=refresh_list).metadata()
        if google.push_receiver_url:
            # A channel that fails to open leaves the user's data synced: the renewal retries it.
            metadata |= best_effort(
                context,
                "channels",
                lambda: ensure_calendar_channels(
                    session, database, user_id, google.push_receiver_url
                ).metadata(),
            )
        return metadata

    yield from sync_users(context, database, CALENDAR_SYNC, sync_one)


@dg.asset(
    **PER_USER_CALENDAR_ASSET,
    description="Each user's Google Calendar push channels: one events.watch channel per calendar "
    "and one calendarList.watch channel, replaced before they expire.",
)
def calendar_watch_channels(
    context: dg.AssetExecutionContext, google: GoogleResource, database: DatabaseResource
) -> Iterator[dg.AssetMaterialization]:
    if not google.push_receiver_url:
        context.log.warning("SUNNY_WEBHOOK_BASE_URL is not set: no push channels are opened")
        return
    yield from renew_user_channels(
        context,
        database,
        SERVICE,
        lambda user_id: ensure_calendar_channels(
            google.session(user_id), database, user_id, google.push_receiver_url
        ),
    )
