"""Test helpers: the sandbox's Gmail truth and what the pipeline stored, in one comparable shape,
and real-shaped messages to put in a mailbox with the real Google client."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from sqlalchemy import select

from sunny_pipelines.db.models import Email


def _comparable(message_id: str, thread_id: str, labels: list[str], internal: datetime | None) -> tuple:
    return (message_id, thread_id, tuple(sorted(labels)), internal.isoformat() if internal else None)


def truth_rows(sandbox, user: dict, days: int | None = None) -> set[tuple]:
    """The sandbox's messages (trash included), newer than ``days`` when given."""
    since = datetime.now(UTC) - timedelta(days=days) if days else None
    rows = set()
    for m in sandbox.world.truth("gmail", user["email"])["messages"]:
        internal = datetime.fromtimestamp(int(m["internalDate"]) / 1000, UTC)
        if since is None or internal >= since:
            rows.add(_comparable(m["id"], m["threadId"], m["labelIds"], internal))
    return rows


def stored_rows(database, user_id: str) -> set[tuple]:
    """The user's `emails` rows that are not deleted."""
    with database.begin() as conn:
        rows = conn.execute(
            select(Email.message_id, Email.thread_id, Email.label_ids, Email.internal_date).where(
                Email.user_id == user_id, Email.deleted_at.is_(None)
            )
        )
        return {_comparable(*row) for row in rows}


def stored_email(database, user_id: str, message_id: str) -> Any:
    with database.begin() as conn:
        return conn.execute(
            select(Email.__table__).where(Email.user_id == user_id, Email.message_id == message_id)
        ).one_or_none()


def gmail_raw(message: EmailMessage | bytes) -> str:
    data = message if isinstance(message, bytes) else message.as_bytes()
    return base64.urlsafe_b64encode(data).decode()


def plain_email(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain="example.com")
    message.set_content(body)
    return message


def insert(gmail, message: EmailMessage | bytes, labels: list[str] | None = None) -> dict[str, Any]:
    body = {"raw": gmail_raw(message), "labelIds": labels or ["INBOX", "UNREAD"]}
    return gmail.users().messages().insert(userId="me", body=body).execute()
