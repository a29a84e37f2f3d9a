"""Drive assets, one partition per user: `drive_files` and `drive_watch_channels`."""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from sunny_pipelines.drive.channels import ensure_drive_channel
from sunny_pipelines.drive.sync import DEFAULT_INTERVAL, SERVICE, sync_user_drive
from sunny_pipelines.inbox.rows import InboxRow
from sunny_pipelines.per_user import UserSync, best_effort, per_user_asset, sync_users
from sunny_pipelines.per_user.channels import renew_user_channels
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines.vocabulary import Source

DRIVE_SYNC = UserSync(
    service=SERVICE,
    inbox_sources=frozenset({Source.GOOGLE_DRIVE}),
    default_interval_seconds=DEFAULT_INTERVAL,
)

POOL = "drive"  # the old "drive" Celery queue
PER_USER_DRIVE_ASSET = per_user_asset(pool=POOL, group_name="drive", kinds={"google", "sql"})


@dg.asset(
    **PER_USER_DRIVE_ASSET,
    description="Each user's Google Drive files (metadata; plain-text exports of Docs, Sheets and "
    "Slides), synced incrementally with Drive's change page tokens. Removed and trashed files "
    "are kept, flagged.",
)
def drive_files(
    context: dg.AssetExecutionContext, google: GoogleResource, database: DatabaseResource
) -> Iterator[dg.AssetMaterialization]:
    def sync_one(user_id: str, claimed: list[InboxRow]) -> dict[str, Any]:
        session = google.session(user_id)
        metadata = sync_user_drive(session, database, user_id).metadata()
        if google.push_receiver_url:
            # A channel that fails to open leaves the user's data synced: the cleanup retries it.
            metadata |= best_effort(
                context,
                "channels",
                lambda: ensure_drive_channel(session, database, user_id, google.push_receiver_url).metadata(),
            )
        return metadata

    yield from sync_users(context, database, DRIVE_SYNC, sync_one)


@dg.asset(
    **PER_USER_DRIVE_ASSET,
    description="Each user's Drive push channel (changes.watch), replaced before it expires.",
)
def drive_watch_channels(
    context: dg.AssetExecutionContext, google: GoogleResource, database: DatabaseResource
) -> Iterator[dg.AssetMaterialization]:
    if not google.push_receiver_url:
        context.log.warning("SUNNY_WEBHOOK_BASE_URL is not set: no push channels are opened")
        return
    yield from renew_user_channels(
        context,
        database,
        SERVICE,
        lambda user_id: ensure_drive_channel(
            google.session(user_id), database, user_id, google.push_receiver_url
        ),
    )
