"""Inbox rows in tests: written as the receiver writes them, read back whole."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import select

from sunny_pipelines.db.models import WebhookInbox
from sunny_pipelines.vocabulary import Source

_message_numbers = itertools.count(1)


def notify(
    database, user_id: str, source: str = Source.GOOGLE_CALENDAR, service: str = "calendar_events"
) -> int:
    """A pending inbox row as the receiver stores a channel notification; returns its id."""
    number = next(_message_numbers)
    payload: dict[str, Any] = {"resource_state": "exists", "message_number": number, "service": service}
    with database.begin() as conn:
        return conn.execute(
            WebhookInbox.__table__.insert()
            .values(
                source=source,
                user_id=user_id,
                channel_id=f"ch-{user_id}",
                dedup_key=f"test:{source}:ch-{user_id}:{number}",
                payload=payload,
            )
            .returning(WebhookInbox.id)
        ).scalar_one()


def inbox_row(database, row_id: int):
    with database.begin() as conn:
        return conn.execute(select(WebhookInbox).where(WebhookInbox.id == row_id)).one()


def pending_users(database, source: str) -> list[str]:
    """The user of each pending inbox row from ``source``."""
    with database.begin() as conn:
        return list(
            conn.execute(
                select(WebhookInbox.user_id).where(
                    WebhookInbox.source == source, WebhookInbox.status == "pending"
                )
            ).scalars()
        )
