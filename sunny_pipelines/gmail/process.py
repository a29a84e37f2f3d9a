"""Email processing (the old `process_pending_emails`): each pending email of a user ends
`processed`, with what it is (an invitation, a reply, a cancellation, a newsletter, automated
mail, or left for classification), or `failed` with the reason. The decision is
`processing.decide`, a plain function; this module reads and writes the rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from sunny_pipelines.db.grants import google_address
from sunny_pipelines.db.models import CalendarEvent, Email
from sunny_pipelines.gmail.mime import ParsedMessage
from sunny_pipelines.gmail.processing import EmailOutcome, OutcomeStatus, decide
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.vocabulary import ProcessingStatus

# Per user per run; the rest waits for the next run (every 5 minutes).
EMAILS_PER_RUN = 1000


@dataclass
class ProcessingResult:
    processed: int = 0
    failed: int = 0
    linked_to_events: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {
            "emails_processed": self.processed,
            "emails_failed": self.failed,
            "invitations_linked_to_events": self.linked_to_events,
            "emails_by_kind": dict(sorted(self.kinds.items())),
        }


def _event_for_uid(conn: Connection, user_id: str, uid: str) -> str | None:
    """The user's calendar event with this iCalendar UID (the series' first instance for a
    recurring one), None when the calendar has not got it (yet)."""
    return conn.execute(
        select(CalendarEvent.event_id)
        .where(CalendarEvent.user_id == user_id, func.lower(CalendarEvent.ical_uid) == uid.lower())
        .order_by(CalendarEvent.recurring_event_id.is_not(None), CalendarEvent.start_time)
        .limit(1)
    ).scalar()


def outcome_values(outcome: EmailOutcome, event_id: str | None, now: datetime) -> dict[str, Any]:
    return {
        "processing_status": str(outcome.status),
        "processing_kind": str(outcome.kind) if outcome.kind else None,
        "processing_reason": outcome.reason,
        "processing_error": outcome.error,
        "calendar_uid": outcome.calendar_uid,
        "calendar_method": outcome.calendar_method,
        "calendar_event_id": event_id,
        "processed_at": now,
    }


def process_pending_emails(
    database: DatabaseResource, user_id: str, limit: int = EMAILS_PER_RUN
) -> ProcessingResult:
    """Decide every pending email of the user (up to ``limit``, oldest first) and record it.
    One transaction: a crash leaves them all pending, and deciding again gives the same answer."""
    result = ProcessingResult()
    with database.begin() as conn:
        mailbox = google_address(conn, user_id)
        pending = conn.execute(
            select(Email.message_id, Email.content)
            .where(
                Email.user_id == user_id,
                Email.processing_status == ProcessingStatus.PENDING,
                Email.deleted_at.is_(None),
            )
            .order_by(Email.internal_date)
            .limit(limit)
        ).all()
        for message_id, content in pending:
            outcome = _decide(content, mailbox)
            event_id = _event_for_uid(conn, user_id, outcome.calendar_uid) if outcome.calendar_uid else None
            conn.execute(
                update(Email)
                .where(Email.user_id == user_id, Email.message_id == message_id)
                .values(**outcome_values(outcome, event_id, datetime.now(UTC)))
            )
            if outcome.status == OutcomeStatus.FAILED:
                result.failed += 1
            else:
                result.processed += 1
            result.linked_to_events += event_id is not None
            kind = str(outcome.kind or "failed")
            result.kinds[kind] = result.kinds.get(kind, 0) + 1
    return result


def _decide(content: dict[str, Any] | None, mailbox: str) -> EmailOutcome:
    try:
        return decide(ParsedMessage.from_json(content or {}), mailbox)
    except Exception as exc:  # a bug on one email must not hold up the others
        error = f"processing error: {type(exc).__name__}: {exc}"
        return EmailOutcome(status=OutcomeStatus.FAILED, kind=None, reason=error, error=error)
