"""The meetings asset, one partition per user: `meeting_bots`."""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from sunny_pipelines.inbox.rows import InboxRow
from sunny_pipelines.meetings.bots import refresh_bot, schedule_user_bots
from sunny_pipelines.per_user import UserSync, per_user_asset, sync_users
from sunny_pipelines.resources.attendee import AttendeeResource
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.vocabulary import Service, Source

MEETINGS_SYNC = UserSync(
    service=Service.ATTENDEE,
    inbox_sources=frozenset({Source.ATTENDEE}),
    # Calendar changes reach the decision at once (meetings_after_calendar_sync_sensor); this is
    # the backstop of `auto_schedule_all_bots`.
    default_interval_seconds=30 * 60,
    # Reads our tables and calls Attendee, never Google: a user waiting for re-consent keeps their bots.
    needs_google_grant=False,
)

POOL = "attendee"  # the old "attendee" Celery queue
# Read, not imported: the calendar domain's table is the input (the database contract).
CALENDAR_EVENTS = dg.AssetKey("calendar_events")


@dg.asset(
    **per_user_asset(pool=POOL, group_name="meetings", kinds={"attendee", "sql"}),
    deps=[CALENDAR_EVENTS],
    description="Each user's meetings and the Attendee bots sent to them: the user's recording rules "
    "decide per meeting (the reason is in meeting_participants), one bot per real meeting "
    "whoever attends it, moved with the meeting and deleted when nobody wants it.",
)
def meeting_bots(
    context: dg.AssetExecutionContext, attendee: AttendeeResource, database: DatabaseResource
) -> Iterator[dg.AssetMaterialization]:
    def work(user_id: str, claimed: list[InboxRow]) -> dict[str, Any]:
        client = attendee.client()
        metadata = schedule_user_bots(database, client, user_id).metadata()
        # Webhooks announce a bot's new state: read it from Attendee (a hint, never data).
        announced = sorted({str(row.payload["bot_id"]) for row in claimed if row.payload.get("bot_id")})
        for bot_id in announced:
            refresh_bot(database, client, bot_id)
        return {**metadata, "bots_refreshed": len(announced), "attendee_calls": client.calls}

    yield from sync_users(context, database, MEETINGS_SYNC, work)
