"""The Drive push channel: one `changes.watch` channel per user, opened with an explicit
expiration (Drive gives 1 hour when none is sent) and replaced before it expires."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from sunny_pipelines.db import sync_state
from sunny_pipelines.drive.sync import SERVICE
from sunny_pipelines.resources.channels import (
    ChannelResult,
    StopAtGoogle,
    ensure_channels,
    fresh_targets,
    web_hook_stopper,
)
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleSession
from sunny_pipelines.vocabulary import ChannelKind

DRIVE_CHANNEL = ChannelKind.DRIVE_CHANGES
CHANNEL_KINDS = (DRIVE_CHANNEL,)
# changes.watch allows up to a week; a little less keeps clear of the limit.
CHANNEL_LIFETIME = timedelta(days=6)
# The daily cleanup at 01:00 and every sync renew it; two days leaves a second chance.
RENEW_WITHIN = timedelta(days=2)
RENEWAL_EVERY = timedelta(days=1)
WEBHOOK_PATH = "/webhooks/google/drive"


def drive_stopper(session: GoogleSession) -> StopAtGoogle:
    return web_hook_stopper(session.drive().channels(), session.execute)


def ensure_drive_channel(
    session: GoogleSession,
    database: DatabaseResource,
    user_id: str,
    push_receiver_url: str,
    now: datetime | None = None,
) -> ChannelResult:
    """Open the user's changes channel if missing, replace it if it expires soon. It watches from
    the saved page token, so the user's first sync must have completed."""
    with database.begin() as conn:
        page_token = sync_state.saved_cursor(conn, user_id, SERVICE)
    if page_token is None:
        raise ValueError("no Drive page token yet: the first sync has not completed")
    changes = session.drive().changes()

    def watch(target: str | None, body: dict[str, Any]) -> Any:
        return changes.watch(pageToken=page_token, body=body)

    return ensure_channels(
        database,
        user_id,
        [(DRIVE_CHANNEL, None)],
        CHANNEL_KINDS,
        watch=watch,
        execute=session.execute,
        stop_at_google=drive_stopper(session),
        address=push_receiver_url.rstrip("/") + WEBHOOK_PATH,
        lifetime=CHANNEL_LIFETIME,
        renew_within=RENEW_WITHIN,
        now=now,
    )


def users_needing_drive_channel(conn: Connection, now: datetime) -> set[str]:
    """Synced users with a usable grant whose changes channel is missing or expires soon."""
    synced = sync_state.synced_users(conn, SERVICE)
    fresh = {user_id for user_id, _, _ in fresh_targets(conn, now + RENEW_WITHIN, CHANNEL_KINDS)}
    return synced - fresh
