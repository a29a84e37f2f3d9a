"""Syncing one user's Gmail into `emails`.

Google's contract: a bounded full sync first (the last ``full_sync_days`` days, newest first,
every page), remembering the mailbox's `historyId`; then `users.history.list` from the saved
`historyId` through every page. A 404 means the saved `historyId` is too old: the bounded full
sync runs again and marks deleted the messages of its window that the mailbox no longer has.
Each message is fetched once, as raw MIME, and parsed then: processing and classification read
the parsed content, never Gmail again.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from googleapiclient.errors import HttpError
from sqlalchemy import Connection, select, update

from sunny_pipelines.db import sync_state
from sunny_pipelines.db.models import Email
from sunny_pipelines.db.upserts import upsert
from sunny_pipelines.gmail.mime import decode_gmail_raw, parse_message
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleSession, http_status
from sunny_pipelines.vocabulary import ProcessingStatus, Service

SERVICE = Service.GMAIL
DEFAULT_INTERVAL = 5 * 60  # the old beat table's "Email processing, every 5 min"
FULL_SYNC_DAYS = int(os.environ.get("SUNNY_GMAIL_FULL_SYNC_DAYS", "30"))
PAGE_SIZE = 500  # the maximum of messages.list and history.list
HISTORY_TYPES = ["messageAdded", "messageDeleted", "labelAdded", "labelRemoved"]
KEY = ["user_id", "message_id"]
# What a re-sync may change on a known message; processing's columns are never reset.
SYNC_COLUMNS = ["thread_id", "label_ids", "history_id", "deleted_at", "synced_at"]


@dataclass
class MailSyncResult:
    full_sync: bool = False
    history_expired: bool = False
    history_records: int = 0
    messages_added: int = 0
    messages_relabelled: int = 0
    messages_deleted: int = 0
    pages: int = 0
    api_calls: int = 0
    duration_seconds: float = 0.0

    @property
    def change_count(self) -> int:
        return self.messages_added + self.messages_relabelled + self.messages_deleted

    def metadata(self) -> dict[str, Any]:
        return {
            "change_count": self.change_count,
            "messages_added": self.messages_added,
            "messages_relabelled": self.messages_relabelled,
            "messages_deleted": self.messages_deleted,
            "full_sync": self.full_sync,
            "history_expired": self.history_expired,
            "history_records": self.history_records,
            "pages": self.pages,
            "api_calls": self.api_calls,
        }


def message_row(user_id: str, message: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The `emails` row of a `messages.get(format="raw")` answer."""
    raw = decode_gmail_raw(message.get("raw", ""))
    parsed = parse_message(raw)
    internal_ms = message.get("internalDate")
    return {
        "user_id": user_id,
        "message_id": message["id"],
        "thread_id": message.get("threadId"),
        # Keys are column names: the contract's `from` and `to`.
        "from": parsed.sender,
        "sender_name": parsed.sender_name,
        "to": list(parsed.to),
        "cc": list(parsed.cc),
        "subject": parsed.subject,
        "snippet": message.get("snippet"),
        "internal_date": datetime.fromtimestamp(int(internal_ms) / 1000, UTC) if internal_ms else None,
        "label_ids": list(message.get("labelIds") or []),
        "history_id": message.get("historyId"),
        "size_estimate": message.get("sizeEstimate"),
        "content": parsed.to_json(),
        "content_hash": hashlib.sha256(raw).hexdigest(),
        "deleted_at": None,
        "processing_status": ProcessingStatus.PENDING,
        "synced_at": now,
    }


def _fetch(session: GoogleSession, message_id: str, fmt: str) -> dict[str, Any] | None:
    """One message, None if it was deleted since it was announced."""
    try:
        return session.execute(session.gmail().users().messages().get(userId="me", id=message_id, format=fmt))
    except HttpError as exc:
        if http_status(exc) == 404:
            return None
        raise


def _live_ids(conn: Connection, user_id: str, ids: Iterable[str]) -> dict[str, list[Any]]:
    """Known, not deleted messages among ``ids``: their labels."""
    ids = list(ids)
    if not ids:
        return {}
    rows = conn.execute(
        select(Email.message_id, Email.label_ids).where(
            Email.user_id == user_id, Email.message_id.in_(ids), Email.deleted_at.is_(None)
        )
    )
    return {message_id: list(labels or []) for message_id, labels in rows}


def _mark_deleted(conn: Connection, user_id: str, ids: list[str], now: datetime) -> int:
    if not ids:
        return 0
    return conn.execute(
        update(Email)
        .where(Email.user_id == user_id, Email.message_id.in_(ids), Email.deleted_at.is_(None))
        .values(deleted_at=now, synced_at=now)
    ).rowcount


def _store(
    conn: Connection,
    user_id: str,
    new_rows: list[dict[str, Any]],
    labels: dict[str, list[Any]],
    deleted: list[str],
    now: datetime,
    result: MailSyncResult,
) -> None:
    result.messages_added += upsert(conn, Email.__table__, new_rows, KEY, update_columns=SYNC_COLUMNS)
    for message_id, label_ids in labels.items():
        result.messages_relabelled += conn.execute(
            update(Email)
            .where(Email.user_id == user_id, Email.message_id == message_id)
            .values(label_ids=label_ids, synced_at=now)
        ).rowcount
    result.messages_deleted += _mark_deleted(conn, user_id, deleted, now)


def full_sync(
    session: GoogleSession,
    database: DatabaseResource,
    user_id: str,
    days: int,
    page_size: int,
    result: MailSyncResult,
) -> None:
    """The last ``days`` days of mail, newest first; marks deleted what the window no longer has."""
    result.full_sync = True
    messages = session.gmail().users().messages()
    # Taken before listing: a change made during the listing is seen again, never lost.
    history_id = session.execute(session.gmail().users().getProfile(userId="me"))["historyId"]
    listed: list[str] = []
    for page in session.pages(
        lambda token: messages.list(
            userId="me", q=f"newer_than:{days}d", includeSpamTrash=True, maxResults=page_size, pageToken=token
        )
    ):
        result.pages += 1
        listed.extend(m["id"] for m in page.get("messages", []))
    with database.begin() as conn:
        known = _live_ids(conn, user_id, listed)
    now = datetime.now(UTC)
    new_rows, labels = [], {}
    for message_id in listed:
        if message_id in known:  # only its labels can have changed
            current = _fetch(session, message_id, "minimal")
            if current is not None and list(current.get("labelIds") or []) != known[message_id]:
                labels[message_id] = list(current.get("labelIds") or [])
        else:
            message = _fetch(session, message_id, "raw")
            if message is not None:
                new_rows.append(message_row(user_id, message, now))
    window_start = now - timedelta(days=days)
    with database.begin() as conn:
        # What the window no longer has was deleted while we were not looking.
        gone = conn.execute(
            select(Email.message_id).where(
                Email.user_id == user_id,
                Email.deleted_at.is_(None),
                Email.internal_date >= window_start,
                Email.message_id.not_in(listed or [""]),
            )
        ).scalars()
        _store(conn, user_id, new_rows, labels, list(gone), now, result)
        sync_state.save_cursor(
            conn, user_id, SERVICE, str(history_id), default_interval_seconds=DEFAULT_INTERVAL
        )


def follow_history(
    session: GoogleSession,
    database: DatabaseResource,
    user_id: str,
    start_history_id: str,
    page_size: int,
    result: MailSyncResult,
) -> None:
    """Apply every history record since ``start_history_id``. Raises HttpError 404 when it is too old."""
    history = session.gmail().users().history()
    records: list[dict[str, Any]] = []
    for page in session.pages(
        lambda token: history.list(
            userId="me",
            startHistoryId=start_history_id,
            historyTypes=HISTORY_TYPES,
            maxResults=page_size,
            pageToken=token,
        )
    ):
        result.pages += 1
        records.extend(page.get("history", []))
    # The mailbox's history id as of the last page: where the next sync starts.
    latest_id = page.get("historyId", start_history_id)
    result.history_records = len(records)
    added, deleted, labels = replay_history(records)
    with database.begin() as conn:
        known = _live_ids(conn, user_id, set(added) | set(labels))
    now = datetime.now(UTC)
    new_rows = []
    for message_id in added:
        if message_id in known:
            continue
        message = _fetch(session, message_id, "raw")
        if message is None:  # deleted since: nothing to keep
            continue
        new_rows.append(message_row(user_id, message, now))
        labels.pop(message_id, None)  # the fetched labels are the newest
    changed = {mid: ids for mid, ids in labels.items() if mid in known and ids != known[mid]}
    with database.begin() as conn:
        _store(conn, user_id, new_rows, changed, sorted(deleted), now, result)
        sync_state.save_cursor(
            conn, user_id, SERVICE, str(latest_id), default_interval_seconds=DEFAULT_INTERVAL
        )


def replay_history(records: list[dict[str, Any]]) -> tuple[list[str], set[str], dict[str, list[Any]]]:
    """Gmail history records, in order, folded into (added ids, deleted ids, labels now).

    Each record's message carries its labels as of that record, so the last one wins."""
    added: dict[str, None] = {}
    deleted: set[str] = set()
    labels: dict[str, list[Any]] = {}
    for record in records:
        for entry in record.get("messagesAdded", []):
            message = entry["message"]
            added[message["id"]] = None
            deleted.discard(message["id"])
            labels[message["id"]] = list(message.get("labelIds") or [])
        for entry in record.get("messagesDeleted", []):
            message_id = entry["message"]["id"]
            deleted.add(message_id)
            added.pop(message_id, None)
            labels.pop(message_id, None)
        for kind in ("labelsAdded", "labelsRemoved"):
            for entry in record.get(kind, []):
                message = entry["message"]
                if message["id"] not in deleted and "labelIds" in message:
                    labels[message["id"]] = list(message["labelIds"])
    return list(added), deleted, labels


def sync_user_mail(
    session: GoogleSession,
    database: DatabaseResource,
    user_id: str,
    *,
    full_sync_days: int = FULL_SYNC_DAYS,
    page_size: int = PAGE_SIZE,
) -> MailSyncResult:
    """Sync one user's Gmail (the caller records the outcome in `sync_state`)."""
    started = time.monotonic()
    result = MailSyncResult()
    try:
        with database.begin() as conn:
            history_id = sync_state.saved_cursor(conn, user_id, SERVICE)
        if history_id is None:
            full_sync(session, database, user_id, full_sync_days, page_size, result)
        else:
            try:
                follow_history(session, database, user_id, history_id, page_size, result)
            except HttpError as exc:
                if http_status(exc) != 404:
                    raise
                result.history_expired = True
                full_sync(session, database, user_id, full_sync_days, page_size, result)
        session.persist_token()
    finally:
        result.api_calls = session.api_calls
        result.duration_seconds = time.monotonic() - started
    return result
