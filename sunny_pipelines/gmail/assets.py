"""The Gmail asset, one partition per user: `emails` (synced, then processed) and
`gmail_watches` (the mailbox's Pub/Sub watch)."""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from sunny_pipelines.gmail.process import process_pending_emails
from sunny_pipelines.gmail.sync import DEFAULT_INTERVAL, SERVICE, sync_user_mail
from sunny_pipelines.gmail.watch import ensure_gmail_watch
from sunny_pipelines.inbox.rows import InboxRow
from sunny_pipelines.per_user import UserSync, best_effort, per_user_asset, sync_users
from sunny_pipelines.per_user.channels import renew_user_channels
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines.vocabulary import Source

GMAIL_SYNC = UserSync(
    service=SERVICE,
    inbox_sources=frozenset({Source.GOOGLE_GMAIL}),
    default_interval_seconds=DEFAULT_INTERVAL,
)

POOL = "email"  # the old "email" Celery queue
PER_USER_EMAIL_ASSET = per_user_asset(pool=POOL, group_name="gmail", kinds={"google", "sql"})


@dg.asset(
    **PER_USER_EMAIL_ASSET,
    description="Each user's Gmail messages (the last 30 days at first, then every change through "
    "Gmail's history), each processed once: meeting invitations, replies and cancellations "
    "linked to calendar events, newsletters, automated mail, the rest left for classification.",
)
def emails(
    context: dg.AssetExecutionContext, google: GoogleResource, database: DatabaseResource
) -> Iterator[dg.AssetMaterialization]:
    def sync_one(user_id: str, claimed: list[InboxRow]) -> dict[str, Any]:
        session = google.session(user_id)
        metadata = sync_user_mail(session, database, user_id).metadata()
        metadata |= process_pending_emails(database, user_id).metadata()
        if google.gmail_pubsub_topic:
            # A watch that fails leaves the user's mail synced: the renewal retries it.
            metadata |= best_effort(
                context,
                "gmail_watch",
                lambda: ensure_gmail_watch(session, database, user_id, google.gmail_pubsub_topic).metadata(),
            )
        return metadata

    yield from sync_users(context, database, GMAIL_SYNC, sync_one)


@dg.asset(
    **PER_USER_EMAIL_ASSET,
    description="Each user's Gmail push watch (users.watch on the Pub/Sub topic), renewed daily.",
)
def gmail_watches(
    context: dg.AssetExecutionContext, google: GoogleResource, database: DatabaseResource
) -> Iterator[dg.AssetMaterialization]:
    if not google.gmail_pubsub_topic:
        context.log.warning("SUNNY_GMAIL_PUBSUB_TOPIC is not set: no Gmail watch is opened")
        return
    yield from renew_user_channels(
        context,
        database,
        SERVICE,
        lambda user_id: ensure_gmail_watch(
            google.session(user_id), database, user_id, google.gmail_pubsub_topic
        ),
    )
