"""The Gmail push watch: `users.watch` on the configured Pub/Sub topic.

A watch lasts 7 days and Google asks for a renewal at least weekly (daily recommended); a new
`users.watch` call replaces the mailbox's previous one. Each call is recorded in
`watch_channels` (kind `gmail`, target = the topic) so operators and the renewal schedule
see when a mailbox's watch expires.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, update

from sunny_pipelines.db import sync_state
from sunny_pipelines.db.models import WatchChannel
from sunny_pipelines.gmail.sync import SERVICE
from sunny_pipelines.resources.channels import ChannelResult, StopAtGoogle, active_channels, fresh_targets
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleSession
from sunny_pipelines.vocabulary import ChannelKind, ChannelStatus

GMAIL_WATCH = ChannelKind.GMAIL_MAILBOX
WATCH_KINDS = (GMAIL_WATCH,)
# Renewed once it is a day old (Google's recommendation); the renewal runs every 4 hours.
RENEW_WITHIN = timedelta(days=6)
RENEWAL_EVERY = timedelta(hours=4)


def gmail_stopper(session: GoogleSession) -> StopAtGoogle:
    return lambda channel: session.execute(session.gmail().users().stop(userId="me"))


def ensure_gmail_watch(
    session: GoogleSession,
    database: DatabaseResource,
    user_id: str,
    topic: str,
    now: datetime | None = None,
) -> ChannelResult:
    """Watch the mailbox on ``topic`` unless a watch on it outlives the renewal margin."""
    now = now or datetime.now(UTC)
    with database.begin() as conn:
        active = active_channels(conn, user_id, WATCH_KINDS)
    if any(w.target == topic and (w.expires_at or now) > now + RENEW_WITHIN for w in active):
        return ChannelResult()
    response = session.execute(session.gmail().users().watch(userId="me", body={"topicName": topic}))
    expires_at = datetime.fromtimestamp(int(response["expiration"]) / 1000, UTC)
    with database.begin() as conn:
        # The new watch replaces the mailbox's previous one at Google.
        conn.execute(
            update(WatchChannel)
            .where(WatchChannel.id.in_([w.id for w in active]))
            .values(status=ChannelStatus.REPLACED, stopped_at=now)
        )
        conn.execute(
            WatchChannel.__table__.insert().values(
                id=str(uuid.uuid4()),
                user_id=user_id,
                service=GMAIL_WATCH,
                target=topic,
                # What is watched: the mailbox (`users.stop` needs nothing more).
                resource_id="me",
                expires_at=expires_at,
                status=ChannelStatus.ACTIVE,
            )
        )
    return ChannelResult(opened=1, replaced=len(active))


def users_needing_gmail_watch(conn: Connection, now: datetime, topic: str) -> set[str]:
    """Synced users with a usable grant whose mailbox watch on ``topic`` is missing or a day old."""
    synced = sync_state.synced_users(conn, SERVICE)
    fresh = {
        user_id
        for user_id, _, target in fresh_targets(conn, now + RENEW_WITHIN, WATCH_KINDS)
        if target == topic
    }
    return synced - fresh
