"""SQLAlchemy 2 models: the database contract the frontend reads (see shared/DESIGN.md).

Every table that holds user data carries ``user_id``; every query filters on it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# JSONB on PostgreSQL (indexable, compact), plain JSON text on SQLite.
JsonType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only autoincrements INTEGER PRIMARY KEY, so BIGINT ids fall back to INTEGER there.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator):
    """A timestamp with time zone, always read and written as an aware UTC datetime.

    SQLite (the local default) stores no offset and hands back naive values; normalising here
    means no caller has to special-case it.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JsonType, list[Any]: JsonType}


def _now_default() -> Any:
    return mapped_column(UtcDateTime(), server_default=func.now(), nullable=False)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    name: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, default="UTC")
    # active | deleted
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="active")
    created_at: Mapped[datetime] = _now_default()
    updated_at: Mapped[datetime] = _now_default()


class GoogleConnection(Base):
    __tablename__ = "google_connections"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), unique=True, nullable=False
    )
    google_email: Mapped[str | None] = mapped_column(String(320))
    # Fernet ciphertexts; never logged, never stored in clear.
    access_token: Mapped[str | None] = mapped_column(Text)
    refresh_token: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    scopes: Mapped[list[Any]] = mapped_column(JsonType, nullable=False, default=list)
    # active | needs_reauth | disconnected | revoked (vocabulary.GrantStatus)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="active")
    last_validated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_refreshed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # When the grant entered needs_reauth: past SUNNY_REAUTH_GRACE_DAYS it is revoked.
    needs_reauth_since: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # When we revoked it at Google and erased its tokens.
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now_default()
    updated_at: Mapped[datetime] = _now_default()

    # Gmail push names a mailbox, matched case-insensitively by the webhook receiver.
    __table_args__ = (Index("ix_google_connections_google_email_lower", func.lower(google_email)),)


class UserSession(Base):
    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    created_at: Mapped[datetime] = _now_default()

    __table_args__ = (Index("ix_user_sessions_expires_at", "expires_at"),)


class SyncState(Base):
    """One row per (user, service): the incremental cursor and the sync cadence."""

    __tablename__ = "sync_state"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    # calendar | calendar_list | drive | gmail | attendee
    service: Mapped[str] = mapped_column(String(32), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(Text)
    interval_seconds: Mapped[int] = mapped_column(Integer, nullable=False, default=1800)
    last_synced_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_change_count: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # When the latest failure was recorded: a failing sync waits its interval from its last
    # attempt, not from its last success (else the backed-off interval would never hold).
    last_failed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = _now_default()


class SyncHistory(Base):
    """One row per finished sync of a (user, service): what the sync optimization learns each
    user's cadence from. Appended with the `sync_state` update, pruned after a retention period."""

    __tablename__ = "sync_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    service: Mapped[str] = mapped_column(String(32), nullable=False)
    finished_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    ok: Mapped[bool] = mapped_column(Boolean, nullable=False)
    # Changes the sync found (0 for a failure).
    change_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The run's `sunny/trigger` (schedule, inbox, first_sync, ...), when the caller knows it.
    trigger: Mapped[str | None] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_sync_history_user_service_finished", "user_id", "service", "finished_at"),
        # Pruning deletes the oldest rows first.
        Index("ix_sync_history_finished_at", "finished_at"),
    )


class WatchChannel(Base):
    """A Google push channel. Channels are never extended, only replaced by a new id."""

    __tablename__ = "watch_channels"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    # calendar_events | calendar_list | drive | gmail
    service: Mapped[str] = mapped_column(String(32), nullable=False)
    # What is watched: a calendar id for calendar_events, empty for the list.
    target: Mapped[str | None] = mapped_column(String(320))
    resource_id: Mapped[str | None] = mapped_column(String(256))
    # SHA-256 of the per-channel secret token Google echoes back; the token itself is not stored.
    token_hash: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # active | stopped | expired | replaced
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="active")
    created_at: Mapped[datetime] = _now_default()
    stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_watch_channels_user_service", "user_id", "service", "status"),)


class UserCalendar(Base):
    """A calendar in the user's calendar list, with its own events sync token."""

    __tablename__ = "user_calendars"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    calendar_id: Mapped[str] = mapped_column(String(320), primary_key=True)
    summary: Mapped[str | None] = mapped_column(Text)
    is_primary: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    access_role: Mapped[str | None] = mapped_column(String(32))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    sync_token: Mapped[str | None] = mapped_column(Text)
    # Set when the calendar left the user's list; its events are then marked deleted.
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = _now_default()


class CalendarEvent(Base):
    """One event instance per (user, calendar, event). Cancelled events are kept as deleted rows
    (``status='cancelled'``, ``deleted_at`` set) so downstream logic sees the cancellation."""

    __tablename__ = "calendar_events"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    calendar_id: Mapped[str] = mapped_column(String(320), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    ical_uid: Mapped[str | None] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    summary: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(Text)
    start_time: Mapped[datetime | None] = mapped_column(UtcDateTime())
    end_time: Mapped[datetime | None] = mapped_column(UtcDateTime())
    is_all_day: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    time_zone: Mapped[str | None] = mapped_column(String(64))
    organizer_email: Mapped[str | None] = mapped_column(String(320))
    attendees: Mapped[list[Any]] = mapped_column(JsonType, nullable=False, default=list)
    meeting_url: Mapped[str | None] = mapped_column(Text)
    meeting_platform: Mapped[str | None] = mapped_column(String(20))
    recurring_event_id: Mapped[str | None] = mapped_column(String(256))
    original_start_time: Mapped[datetime | None] = mapped_column(UtcDateTime())
    html_link: Mapped[str | None] = mapped_column(Text)
    updated: Mapped[datetime | None] = mapped_column(UtcDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    synced_at: Mapped[datetime] = _now_default()

    __table_args__ = (
        Index("ix_calendar_events_user_start", "user_id", "start_time"),
        Index("ix_calendar_events_meeting_url", "meeting_url"),
    )


class DriveFile(Base):
    """A Drive file the user can see, per (user, file). Nothing is forgotten silently: a file
    deleted for good (or no longer shared) is kept with ``removed`` set, a trashed one with
    ``trashed``. Google Docs, Sheets and Slides keep a plain-text export for classification."""

    __tablename__ = "drive_files"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    file_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    mime_type: Mapped[str | None] = mapped_column(String(255))
    parents: Mapped[list[Any]] = mapped_column(JsonType, nullable=False, default=list)
    created_time: Mapped[datetime | None] = mapped_column(UtcDateTime())
    modified_time: Mapped[datetime | None] = mapped_column(UtcDateTime())
    md5_checksum: Mapped[str | None] = mapped_column(String(32))
    size: Mapped[int | None] = mapped_column(BigInteger)
    version: Mapped[str | None] = mapped_column(String(32))
    owners: Mapped[list[Any]] = mapped_column(JsonType, nullable=False, default=list)
    shared: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    web_view_link: Mapped[str | None] = mapped_column(Text)
    trashed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    removed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # The plain-text export (Docs, Sheets, Slides only), capped; the hash covers the whole export.
    text_content: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    content_truncated: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # The file version the export was taken from: an unchanged file is not exported again.
    exported_version: Mapped[str | None] = mapped_column(String(64))
    export_error: Mapped[str | None] = mapped_column(Text)
    synced_at: Mapped[datetime] = _now_default()

    __table_args__ = (Index("ix_drive_files_user_modified", "user_id", "modified_time"),)


class Email(Base):
    """A Gmail message per (user, message). Deleted messages are kept with ``deleted_at`` set.
    ``processing_status`` starts ``pending``; email processing ends it ``processed`` (with the
    kind it found) or ``failed`` (with the reason)."""

    __tablename__ = "emails"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    thread_id: Mapped[str | None] = mapped_column(String(64))
    # `from` and `to` are the contract's names (SQL keywords, quoted by SQLAlchemy).
    sender: Mapped[str | None] = mapped_column("from", String(320))
    sender_name: Mapped[str | None] = mapped_column(Text)
    recipients: Mapped[list[Any]] = mapped_column("to", JsonType, nullable=False, default=list)
    cc: Mapped[list[Any]] = mapped_column(JsonType, nullable=False, default=list)
    subject: Mapped[str | None] = mapped_column(Text)
    snippet: Mapped[str | None] = mapped_column(Text)
    internal_date: Mapped[datetime | None] = mapped_column(UtcDateTime())
    label_ids: Mapped[list[Any]] = mapped_column(JsonType, nullable=False, default=list)
    history_id: Mapped[str | None] = mapped_column(String(32))
    size_estimate: Mapped[int | None] = mapped_column(Integer)
    # What processing and classification read, parsed once from the raw MIME at sync time.
    content: Mapped[dict[str, Any]] = mapped_column(JsonType, nullable=False, default=dict)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # pending | processed | failed
    processing_status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    processing_kind: Mapped[str | None] = mapped_column(String(40))
    processing_reason: Mapped[str | None] = mapped_column(Text)
    processing_error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Invitations, replies and cancellations: the iCalendar UID that links them to `calendar_events`.
    calendar_uid: Mapped[str | None] = mapped_column(String(512))
    calendar_method: Mapped[str | None] = mapped_column(String(20))
    calendar_event_id: Mapped[str | None] = mapped_column(String(256))
    synced_at: Mapped[datetime] = _now_default()

    __table_args__ = (
        Index("ix_emails_user_internal_date", "user_id", "internal_date"),
        Index("ix_emails_user_processing", "user_id", "processing_status"),
    )


class RecordingRulesRow(Base):
    """A user's recording rules (`meetings.rules.RecordingRules` as JSON); no row means defaults."""

    __tablename__ = "recording_rules"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    rules: Mapped[dict[str, Any]] = mapped_column(JsonType, nullable=False, default=dict)
    updated_at: Mapped[datetime] = _now_default()


class MeetingOverride(Base):
    """A user's per-event choice: always or never send a bot to this event."""

    __tablename__ = "meeting_overrides"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    calendar_id: Mapped[str] = mapped_column(String(320), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    # always | never
    override: Mapped[str] = mapped_column(String(10), nullable=False)
    updated_at: Mapped[datetime] = _now_default()


class Meeting(Base):
    """A real-world meeting, shared by every user whose calendar has it: same normalized meeting
    URL and start time (``dedup_key``). One bot per meeting."""

    __tablename__ = "meetings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    meeting_url: Mapped[str] = mapped_column(Text, nullable=False)
    platform: Mapped[str | None] = mapped_column(String(20))
    title: Mapped[str | None] = mapped_column(Text)
    start_time: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    end_time: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # The `updated` of the calendar event whose times the meeting has: a participant's calendar
    # that has not seen a move yet never moves the meeting back.
    event_updated: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # upcoming | completed
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="upcoming")
    finalized_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = _now_default()
    updated_at: Mapped[datetime] = _now_default()

    __table_args__ = (Index("ix_meetings_start_time", "start_time"),)


class MeetingParticipant(Base):
    """Why a user's rules did or did not ask for a bot at a meeting (one row per user, meeting)."""

    __tablename__ = "meeting_participants"

    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    calendar_id: Mapped[str] = mapped_column(String(320), nullable=False)
    event_id: Mapped[str] = mapped_column(String(256), nullable=False)
    want_bot: Mapped[bool] = mapped_column(Boolean, nullable=False)
    decision_code: Mapped[str] = mapped_column(String(40), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    decided_at: Mapped[datetime] = _now_default()

    __table_args__ = (Index("ix_meeting_participants_user", "user_id"),)


class MeetingBot(Base):
    """An Attendee bot sent to a meeting."""

    __tablename__ = "meeting_bots"

    bot_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), nullable=False)
    deduplication_key: Mapped[str] = mapped_column(String(128), nullable=False)
    bot_name: Mapped[str | None] = mapped_column(String(200))
    # Attendee's bot states (scheduled, staged, joining, joined_recording, ..., ended, fatal_error)
    # plus `deleted` once we deleted a scheduled bot.
    state: Mapped[str] = mapped_column(String(40), nullable=False)
    state_reason: Mapped[str | None] = mapped_column(Text)
    join_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # not_started | in_progress | complete | failed | stored (in meeting_transcripts)
    transcript_status: Mapped[str] = mapped_column(String(20), nullable=False, default="not_started")
    last_error: Mapped[str | None] = mapped_column(Text)
    data_deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = _now_default()
    updated_at: Mapped[datetime] = _now_default()

    __table_args__ = (
        Index("ix_meeting_bots_meeting", "meeting_id"),
        Index("ix_meeting_bots_state", "state"),
    )


class MeetingTranscript(Base):
    """One utterance of a meeting's transcript, as Attendee gives it."""

    __tablename__ = "meeting_transcripts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), nullable=False)
    bot_id: Mapped[str] = mapped_column(String(64), nullable=False)
    sequence: Mapped[int] = mapped_column(Integer, nullable=False)
    speaker_name: Mapped[str | None] = mapped_column(Text)
    speaker_uuid: Mapped[str | None] = mapped_column(String(128))
    timestamp_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (Index("ix_meeting_transcripts_bot_sequence", "bot_id", "sequence", unique=True),)


class DocumentClassification(Base):
    """The AI's label for one document of a user (a Drive text export or an email). A row is
    classified again only when its content hash or the model changes; a failed answer is kept
    as `failed` with its reason (never as a label) and retried later."""

    __tablename__ = "document_classifications"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    # drive | email
    source: Mapped[str] = mapped_column(String(20), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    # classified | failed | deferred
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    label: Mapped[str | None] = mapped_column(String(40))
    confidence: Mapped[float | None] = mapped_column(Float)
    rationale: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(100))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    classified_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = _now_default()


class AiUsage(Base):
    """Tokens one model call used, for the per-user daily budget and for operators."""

    __tablename__ = "ai_usage"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[str | None] = mapped_column(String(64))
    day: Mapped[str] = mapped_column(String(10), nullable=False)  # UTC date, YYYY-MM-DD
    purpose: Mapped[str] = mapped_column(String(40), nullable=False)
    model: Mapped[str] = mapped_column(String(100), nullable=False)
    prompt_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    total_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = _now_default()

    __table_args__ = (Index("ix_ai_usage_user_day", "user_id", "day"),)


class AiModel(Base):
    """A model the provider lists; ``in_use`` marks the one calls go to."""

    __tablename__ = "ai_models"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    available: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    in_use: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    owned_by: Mapped[str | None] = mapped_column(String(100))
    checked_at: Mapped[datetime] = _now_default()


class MeetingSummary(Base):
    """A meeting's summary, decisions and action items, from its transcript."""

    __tablename__ = "meeting_summaries"

    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True)
    # One of the meeting's participants, whose partition produced it and whose budget paid.
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    # summarized | failed | deferred
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    summary: Mapped[str | None] = mapped_column(Text)
    decisions: Mapped[list[Any]] = mapped_column(JsonType, nullable=False, default=list)
    action_items: Mapped[list[Any]] = mapped_column(JsonType, nullable=False, default=list)
    transcript_hash: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = _now_default()


class WebhookInbox(Base):
    """Every received push notification, stored before the webhook answers 2xx."""

    __tablename__ = "webhook_inbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # google_calendar | google_drive | google_gmail | attendee
    source: Mapped[str] = mapped_column(String(32), nullable=False)
    user_id: Mapped[str | None] = mapped_column(String(64))
    channel_id: Mapped[str | None] = mapped_column(String(256))
    dedup_key: Mapped[str] = mapped_column(String(512), unique=True, nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType, nullable=False, default=dict)
    received_at: Mapped[datetime] = _now_default()
    # pending | done | failed | rejected
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_webhook_inbox_status_id", "status", "id"),)


class OAuthState(Base):
    """One Google connect flow in progress: the `state` sent to Google's consent screen (stored as
    a digest) and its PKCE code verifier (encrypted), used at most once by the callback."""

    __tablename__ = "oauth_states"

    # SHA-256 of the state: a database reader cannot complete someone's flow with it.
    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Fernet ciphertext of the PKCE code_verifier.
    code_verifier: Mapped[str] = mapped_column(Text, nullable=False)
    redirect_uri: Mapped[str] = mapped_column(String(2000), nullable=False)
    scopes: Mapped[list[Any]] = mapped_column(JsonType, nullable=False, default=list)
    login_hint: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = _now_default()
    # Set when the callback took it (whatever came of it): a state is never accepted twice.
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # What came of it: the user it connected, or why it failed.
    user_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_oauth_states_created_at", "created_at"),)
