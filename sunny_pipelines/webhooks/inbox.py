"""Database side of the receiver: validate against `watch_channels` / users and write one
`webhook_inbox` row per notification, each in one short transaction.

Functions here are synchronous (called in Starlette's threadpool). They raise `Rejected` for
notifications that must not be stored, and `DatabaseUnavailable` for any database error, so a
half-written row is impossible: the transaction is rolled back and the caller answers 503.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from sunny_pipelines.db.models import (
    GoogleConnection,
    MeetingBot,
    MeetingParticipant,
    User,
    WatchChannel,
    WebhookInbox,
)
from sunny_pipelines.db.secrets import channel_token_matches
from sunny_pipelines.vocabulary import ChannelStatus, InboxStatus, Source, UserStatus

log = logging.getLogger(__name__)

INBOX = WebhookInbox.__table__

Outcome = Literal["accepted", "duplicate", "sync", "recorded_rejected"]


class Rejected(Exception):
    """A notification refused without storing anything. ``ref`` (channel or message id) is
    safe to log; ``reason`` is a fixed code used for the answer, the log and the counters."""

    def __init__(self, status: int, reason: str, ref: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.ref = ref


class DatabaseUnavailable(Exception):
    """Any database error: answered 503 so that the sender retries."""


@dataclass(frozen=True)
class StoreResult:
    outcome: Outcome
    inbox_id: int | None = None
    user_id: str | None = None
    # For recorded_rejected: why the authenticated notification is unusable.
    reason: str | None = None


@dataclass(frozen=True)
class ChannelNotification:
    """The headers of one Google channel notification (already checked for presence)."""

    channel_id: str
    token: str = field(repr=False)
    resource_id: str
    resource_state: str
    message_number: int
    resource_uri: str | None = None
    channel_expiration: str | None = None
    changed: list[str] | None = None


@contextmanager
def _transaction(engine: Engine) -> Iterator[Connection]:
    try:
        with engine.begin() as conn:
            yield conn
    except SQLAlchemyError as exc:
        # The class name only: DBAPI messages can include parameters (payload content).
        log.error("webhook database error: %s", type(exc).__name__)
        raise DatabaseUnavailable(type(exc).__name__) from exc


def _now() -> datetime:
    return datetime.now(UTC)


def insert_inbox_row(
    conn: Connection,
    *,
    source: Source,
    dedup_key: str,
    payload: dict[str, Any],
    user_id: str | None = None,
    channel_id: str | None = None,
    status: InboxStatus = InboxStatus.PENDING,
    error: str | None = None,
) -> int | None:
    """INSERT … ON CONFLICT (dedup_key) DO NOTHING. Returns the new id, or None for a duplicate."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    values: dict[str, Any] = {
        "source": source,
        "user_id": user_id,
        "channel_id": channel_id,
        "dedup_key": dedup_key,
        "payload": payload,
        "status": status,
        "attempts": 0,
        "error": error,
    }
    if status != InboxStatus.PENDING:
        values["processed_at"] = func.now()
    stmt = (
        insert(INBOX)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(INBOX.c.id)
    )
    return conn.execute(stmt).scalar_one_or_none()


def channel_opened_for(address: str | None, request_path: str) -> bool:
    """Whether a channel whose `watch_channels.address` is ``address`` (the full URL given to
    Google) belongs on ``request_path``: same path, or a path that ends with it after a "/"
    (a proxy that strips a public prefix). A channel without an address belongs nowhere."""
    if not address:
        return False
    opened = unquote(urlsplit(address).path).rstrip("/")
    path = request_path.rstrip("/")
    return bool(path) and (opened == path or opened.endswith("/" + path.lstrip("/")))


def store_channel_notification(
    engine: Engine, source: Source, request_path: str, note: ChannelNotification
) -> StoreResult:
    """Authenticate a Google channel notification against its channel row and queue it as
    ``source``. The channel must have been opened for ``request_path``."""
    ref = note.channel_id
    with _transaction(engine) as conn:
        channels = WatchChannel.__table__
        row = conn.execute(select(channels).where(channels.c.id == note.channel_id)).first()
        if row is None:
            raise Rejected(404, "unknown_channel", ref)
        if not channel_opened_for(row.address, request_path):
            raise Rejected(404, "wrong_endpoint", ref)
        # The token authenticates the sender; check it before revealing anything about state.
        if not channel_token_matches(note.token, row.token_hash):
            raise Rejected(403, "bad_channel_token", ref)
        if row.resource_id and row.resource_id != note.resource_id:
            raise Rejected(403, "resource_mismatch", ref)
        if row.status == ChannelStatus.EXPIRED or (row.expires_at is not None and row.expires_at <= _now()):
            raise Rejected(403, "channel_expired", ref)
        if row.status != ChannelStatus.ACTIVE:
            raise Rejected(403, "channel_inactive", ref)
        if note.resource_state == "sync":
            # The handshake Google sends when a channel is created: nothing changed yet.
            return StoreResult("sync", user_id=row.user_id)
        payload = {
            "resource_state": note.resource_state,
            "resource_id": note.resource_id,
            "resource_uri": note.resource_uri,
            "message_number": note.message_number,
            "service": row.service,
            "target": row.target,
            "changed": note.changed,
            "channel_expiration": note.channel_expiration,
        }
        inbox_id = insert_inbox_row(
            conn,
            source=source,
            user_id=row.user_id,
            channel_id=row.id,
            dedup_key=f"google:{row.id}:{note.message_number}",
            payload=payload,
        )
    return StoreResult("accepted" if inbox_id else "duplicate", inbox_id, row.user_id)


def _user_for_mailbox(conn: Connection, email: str) -> str | None:
    """The active user whose Google connection (or, failing that, account email) is ``email``."""
    needle = email.strip().lower()
    user_id = conn.execute(
        select(GoogleConnection.user_id)
        .join(User, User.id == GoogleConnection.user_id)
        .where(func.lower(GoogleConnection.google_email) == needle, User.status == UserStatus.ACTIVE)
        .limit(1)
    ).scalar_one_or_none()
    if user_id is None:
        user_id = conn.execute(
            select(User.id).where(func.lower(User.email) == needle, User.status == UserStatus.ACTIVE).limit(1)
        ).scalar_one_or_none()
    return user_id


def _insert_or_reject(
    conn: Connection,
    source: Source,
    user_id: str | None,
    dedup_key: str,
    payload: dict[str, Any],
    rejected_because: str | None,
) -> int | None:
    return insert_inbox_row(
        conn,
        source=source,
        user_id=user_id,
        dedup_key=dedup_key,
        payload=payload,
        status=InboxStatus.REJECTED if rejected_because else InboxStatus.PENDING,
        error=rejected_because,
    )


def _stored(inbox_id: int | None, user_id: str | None, rejected_because: str | None) -> StoreResult:
    """What an insert of an authenticated notification came to: a duplicate delivery, a row
    recorded `rejected` (acknowledged, never run), or a pending row."""
    if inbox_id is None:
        return StoreResult("duplicate", None, user_id)
    if rejected_because:
        return StoreResult("recorded_rejected", inbox_id, None, rejected_because)
    return StoreResult("accepted", inbox_id, user_id)


def store_gmail_notification(
    engine: Engine,
    message_id: str,
    payload: dict[str, Any],
    unusable_reason: str | None,
) -> StoreResult:
    """Queue an authenticated Pub/Sub message, or record it as `rejected` when it is unusable
    (Pub/Sub redelivers every non-2xx for days, so these are acknowledged, not refused)."""
    dedup_key = f"pubsub:{message_id}"
    with _transaction(engine) as conn:
        reason = unusable_reason
        user_id = None
        if reason is None:
            user_id = _user_for_mailbox(conn, payload["emailAddress"])
            if user_id is None:
                reason = "unknown_mailbox"
        inbox_id = _insert_or_reject(conn, Source.GOOGLE_GMAIL, user_id, dedup_key, payload, reason)
    return _stored(inbox_id, user_id, reason)


def store_attendee_notification(
    engine: Engine, payload: dict[str, Any], claimed_user: str | None
) -> StoreResult:
    """Queue a verified Attendee webhook. ``claimed_user`` comes from bot_metadata and is kept
    only if such a user exists, so the inbox sensor never sees a made-up partition key; without
    one, the user is resolved from the bot: a participant who wants it (else any participant). A
    webhook about a bot that is none of ours is recorded `rejected` (acknowledged, never run):
    pending, it would wait for a user forever."""
    with _transaction(engine) as conn:
        user_id = None
        if claimed_user is not None:
            user_id = conn.execute(select(User.id).where(User.id == claimed_user)).scalar_one_or_none()
        bot_id = payload.get("bot_id")
        if user_id is None and isinstance(bot_id, str):
            user_id = conn.execute(
                select(MeetingParticipant.user_id)
                .join(MeetingBot, MeetingBot.meeting_id == MeetingParticipant.meeting_id)
                .where(MeetingBot.bot_id == bot_id)
                .order_by(MeetingParticipant.want_bot.desc(), MeetingParticipant.user_id)
                .limit(1)
            ).scalar_one_or_none()
        reason = None if user_id else "unknown_bot: no user of ours has this bot"
        key = f"attendee:{payload['idempotency_key']}"
        inbox_id = _insert_or_reject(conn, Source.ATTENDEE, user_id, key, payload, reason)
    return _stored(inbox_id, user_id, reason)


def check_database(engine: Engine) -> None:
    """A round trip that reads the inbox table, so that a lock keeping the receiver from writing
    it (under the engine's lock timeout) also fails the check; raises DatabaseUnavailable."""
    with _transaction(engine) as conn:
        conn.execute(select(INBOX.c.id).limit(1))
