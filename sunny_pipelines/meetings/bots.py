"""Sending bots to meetings (the old `auto_schedule_user_bots`), following their states and storing
their transcripts (`sync_all_attendees`), and finishing completed meetings
(`cleanup_completed_meetings`).

A user's upcoming calendar events become `meetings` (one per real meeting, whoever's calendar it
is in) and `meeting_participants` (the user's rules' decision and its reason). Each meeting then
gets what its participants want: a bot while at least one wants it, none otherwise. The meeting
is reconciled under a lock of its own, and a bot is looked up by its `deduplication_key` before
one is created, so re-runs, retries and two users' runs never book two bots.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, or_, select, update

from sunny_pipelines.db.grants import google_address
from sunny_pipelines.db.locks import sync_lock
from sunny_pipelines.db.models import (
    CalendarEvent,
    Meeting,
    MeetingBot,
    MeetingOverride,
    MeetingParticipant,
    MeetingTranscript,
    RecordingRulesRow,
)
from sunny_pipelines.db.upserts import insert_new, upsert
from sunny_pipelines.meetings.plan import (
    TERMINAL_STATES,
    BotAction,
    join_time,
    meeting_dedup_key,
    plan_bot,
)
from sunny_pipelines.meetings.rules import Decision, MeetingEvent, Override, RecordingRules, decide
from sunny_pipelines.resources.attendee import AttendeeClient, AttendeeError
from sunny_pipelines.resources.database import DatabaseResource

# Meetings that started this long ago are still looked at (in progress, or just cancelled).
LOOKBACK = timedelta(days=1)
MEETING_LOCK_WAIT_SECONDS = 60.0
RETENTION_DAYS = int(os.environ.get("SUNNY_MEETING_RETENTION_DAYS", "30"))


@dataclass
class BotSchedulingResult:
    events: int = 0
    meetings_wanted: int = 0
    created: int = 0
    adopted: int = 0
    moved: int = 0
    deleted: int = 0
    decisions: dict[str, int] = field(default_factory=dict)

    @property
    def change_count(self) -> int:
        return self.created + self.adopted + self.moved + self.deleted

    def metadata(self) -> dict[str, Any]:
        return {
            "change_count": self.change_count,
            "events_considered": self.events,
            "meetings_wanted": self.meetings_wanted,
            "bots_created": self.created,
            "bots_adopted": self.adopted,
            "bots_moved": self.moved,
            "bots_deleted": self.deleted,
            "decisions": dict(sorted(self.decisions.items())),
        }


def _rules(conn: Connection, user_id: str) -> RecordingRules:
    stored = conn.execute(
        select(RecordingRulesRow.rules).where(RecordingRulesRow.user_id == user_id)
    ).scalar()
    return RecordingRules.from_json(stored)


def _meeting_for(conn: Connection, row: Any, known: int | None, now: datetime) -> int:
    """The meeting of a calendar event: the one the user's participation already names (moved
    if the event is newer), else the meeting with the same URL and start, else a new one."""
    values = {
        "meeting_url": row.meeting_url,
        "platform": row.meeting_platform,
        "title": row.summary,
        "start_time": row.start_time,
        "end_time": row.end_time,
        "event_updated": row.updated,
        "updated_at": now,
    }
    if known is not None:
        newer = or_(Meeting.event_updated.is_(None), Meeting.event_updated < row.updated)
        conn.execute(update(Meeting).where(Meeting.id == known, newer).values(**values))
        return known
    found = conn.execute(
        select(Meeting.id).where(
            Meeting.meeting_url == row.meeting_url,
            Meeting.start_time == row.start_time,
            Meeting.status == "upcoming",
        )
    ).scalar()
    if found is not None:
        return found
    # New, unless another user's run makes it at this very moment; a meeting that moved away
    # keeps its key, so a new one in its old slot gets the next key.
    key = meeting_dedup_key(row.meeting_url, row.start_time)
    for n in range(1, 100):
        dedup_key = key if n == 1 else f"{key}-{n}"
        new = insert_new(
            conn, Meeting.__table__, {"dedup_key": dedup_key, "status": "upcoming", **values}, ["dedup_key"]
        )
        if new is not None:
            return new
        same = conn.execute(
            select(Meeting.id).where(
                Meeting.dedup_key == dedup_key,
                Meeting.meeting_url == row.meeting_url,
                Meeting.start_time == row.start_time,
            )
        ).scalar()
        if same is not None:
            return same
    raise RuntimeError(f"no free meeting key for {row.meeting_url} at {row.start_time}")


def decide_user_meetings(
    database: DatabaseResource, user_id: str, now: datetime, result: BotSchedulingResult
) -> set[int]:
    """Record the user's decision for each of their meetings; returns the meetings touched."""
    with database.begin() as conn:
        email = google_address(conn, user_id)
        rules = _rules(conn, user_id)
        overrides = {
            (cal, ev): Override(value)
            for cal, ev, value in conn.execute(
                select(MeetingOverride.calendar_id, MeetingOverride.event_id, MeetingOverride.override).where(
                    MeetingOverride.user_id == user_id
                )
            )
        }
        known = {
            (cal, ev): meeting_id
            for meeting_id, cal, ev in conn.execute(
                select(
                    MeetingParticipant.meeting_id, MeetingParticipant.calendar_id, MeetingParticipant.event_id
                )
                .join(Meeting, Meeting.id == MeetingParticipant.meeting_id)
                .where(MeetingParticipant.user_id == user_id, Meeting.status == "upcoming")
            )
        }
        horizon = now + timedelta(days=rules.lookahead_days)
        events = conn.execute(
            select(CalendarEvent.__table__).where(
                CalendarEvent.user_id == user_id,
                or_(
                    and_(CalendarEvent.start_time >= now - LOOKBACK, CalendarEvent.start_time <= horizon),
                    # Events the user's participation names, wherever they moved.
                    CalendarEvent.event_id.in_([ev for _, ev in known] or [""]),
                ),
            )
        ).all()
    touched: set[int] = set()
    # One short transaction per event, in one global order: concurrent runs of users who share
    # meetings make each meeting once and never wait on each other in a cycle.
    for row in sorted(events, key=lambda r: (r.start_time or now, r.meeting_url or "", r.event_id)):
        key = (row.calendar_id, row.event_id)
        linkable = row.meeting_url is not None and row.start_time is not None
        if not linkable and key not in known:
            continue
        result.events += 1
        decision: Decision = decide(
            MeetingEvent.from_row(row._mapping), email, rules, overrides.get(key), now
        )
        result.decisions[str(decision.code)] = result.decisions.get(str(decision.code), 0) + 1
        with database.begin() as conn:
            # An event that lost its link or time stays with its meeting, now unwanted.
            meeting_id = _meeting_for(conn, row, known.get(key), now) if linkable else known[key]
            upsert(
                conn,
                MeetingParticipant.__table__,
                [
                    {
                        "meeting_id": meeting_id,
                        "user_id": user_id,
                        "calendar_id": row.calendar_id,
                        "event_id": row.event_id,
                        "want_bot": decision.want_bot,
                        "decision_code": str(decision.code),
                        "reason": decision.reason,
                        "decided_at": now,
                    }
                ],
                ["meeting_id", "user_id"],
            )
        if known.get(key) not in (None, meeting_id):
            touched.add(known[key])
        touched.add(meeting_id)
    return touched


def _latest_bot(conn: Connection, meeting_id: int) -> Any:
    return conn.execute(
        select(MeetingBot.__table__)
        .where(MeetingBot.meeting_id == meeting_id)
        .order_by(MeetingBot.created_at.desc())
        .limit(1)
    ).first()


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _record_bot(conn: Connection, meeting_id: int, bot: dict[str, Any], bot_name: str | None) -> None:
    upsert(
        conn,
        MeetingBot.__table__,
        [
            {
                "bot_id": bot["id"],
                "meeting_id": meeting_id,
                "deduplication_key": bot.get("deduplication_key") or "",
                "bot_name": bot_name,
                "state": bot.get("state") or "scheduled",
                "join_at": _parse_time(bot.get("join_at")),
                "transcript_status": bot.get("transcription_state") or "not_started",
            }
        ],
        ["bot_id"],
    )


def _adopt(client: AttendeeClient, dedup_key: str) -> dict[str, Any] | None:
    """A live bot Attendee already has for this meeting (made by a create that timed out, or by
    a run that crashed before recording it)."""
    live = [b for b in client.bots_with_key(dedup_key) if b.get("state") not in TERMINAL_STATES]
    return live[0] if live else None


def reconcile_meeting(
    database: DatabaseResource,
    client: AttendeeClient,
    meeting_id: int,
    now: datetime,
    result: BotSchedulingResult,
) -> None:
    """Give the meeting the bot its participants want, no more, no less."""
    with sync_lock(database.engine, str(meeting_id), "meeting", MEETING_LOCK_WAIT_SECONDS):
        with database.begin() as conn:
            meeting = conn.execute(select(Meeting.__table__).where(Meeting.id == meeting_id)).one()
            wanting = (
                conn.execute(
                    select(MeetingParticipant.user_id)
                    .where(MeetingParticipant.meeting_id == meeting_id, MeetingParticipant.want_bot.is_(True))
                    .order_by(MeetingParticipant.user_id)
                )
                .scalars()
                .all()
            )
            bot = _latest_bot(conn, meeting_id)
            # The bot is the first wanting participant's: their name for it, their lead time.
            rules = _rules(conn, wanting[0]) if wanting else RecordingRules()
        result.meetings_wanted += bool(wanting)
        join_at = join_time(meeting.start_time, rules.join_minutes_before, now)
        plan = plan_bot(
            wanted=bool(wanting),
            join_at=join_at,
            bot_state=bot.state if bot else None,
            bot_join_at=bot.join_at if bot else None,
        )
        if plan.action == BotAction.CREATE:
            made = _adopt(client, meeting.dedup_key)
            if made is not None:
                result.adopted += 1
            else:
                made = _create(client, meeting, join_at, rules.bot_name, wanting[0])
                result.created += 1
            with database.begin() as conn:
                _record_bot(conn, meeting_id, made, rules.bot_name)
        elif plan.action == BotAction.MOVE:
            moved = client.move_bot(bot.bot_id, join_at)
            result.moved += 1
            with database.begin() as conn:
                conn.execute(
                    update(MeetingBot)
                    .where(MeetingBot.bot_id == bot.bot_id)
                    .values(join_at=_parse_time(moved.get("join_at")) or join_at, updated_at=now)
                )
        elif plan.action == BotAction.DELETE:
            try:
                client.delete_bot(bot.bot_id)
            except AttendeeError as exc:
                if exc.status != 404:  # already gone at Attendee
                    raise
            result.deleted += 1
            with database.begin() as conn:
                conn.execute(
                    update(MeetingBot)
                    .where(MeetingBot.bot_id == bot.bot_id)
                    .values(state="deleted", state_reason=plan.reason, updated_at=now)
                )


def _create(
    client: AttendeeClient, meeting: Any, join_at: datetime, bot_name: str, user_id: str
) -> dict[str, Any]:
    try:
        return client.create_bot(
            meeting_url=meeting.meeting_url,
            bot_name=bot_name,
            join_at=join_at,
            deduplication_key=meeting.dedup_key,
            metadata={"user_id": user_id, "meeting_id": str(meeting.id)},
        )
    except AttendeeError:
        # A timeout or a 5xx may have made the bot, and Attendee refuses a second bot with the
        # same deduplication key (400, or 409): whatever went wrong, look for it before failing.
        made = _adopt(client, meeting.dedup_key)
        if made is not None:
            return made
        raise


def schedule_user_bots(
    database: DatabaseResource, client: AttendeeClient, user_id: str, now: datetime | None = None
) -> BotSchedulingResult:
    """The old `auto_schedule_user_bots(user)`: decide the user's meetings, then reconcile each."""
    now = now or datetime.now(UTC)
    result = BotSchedulingResult()
    for meeting_id in sorted(decide_user_meetings(database, user_id, now, result)):
        reconcile_meeting(database, client, meeting_id, now, result)
    return result


# --- bot states and transcripts ---------------------------------------------------------------


def refresh_bot(database: DatabaseResource, client: AttendeeClient, bot_id: str) -> str:
    """Bring a bot's row up to date with Attendee; store its transcript once it is complete.
    Returns its state."""
    bot = client.get_bot(bot_id)
    state = bot.get("state") or "unknown"
    events = bot.get("events") or []
    last = events[-1] if events else {}
    reason = " / ".join(str(v) for v in (last.get("type"), last.get("sub_type")) if v) or None
    values: dict[str, Any] = {"state": state, "updated_at": datetime.now(UTC)}
    if state == "fatal_error":
        values["state_reason"] = reason or "fatal_error"
    with database.begin() as conn:
        row = conn.execute(select(MeetingBot.__table__).where(MeetingBot.bot_id == bot_id)).first()
    if row is None:
        return state
    transcription = bot.get("transcription_state")
    if row.transcript_status != "stored":
        values["transcript_status"] = transcription or row.transcript_status
    if state == "ended" and transcription == "complete" and row.transcript_status != "stored":
        utterances = client.transcript(bot_id)
        with database.begin() as conn:
            store_transcript(conn, row.meeting_id, bot_id, utterances)
        values["transcript_status"] = "stored"
    with database.begin() as conn:
        conn.execute(update(MeetingBot).where(MeetingBot.bot_id == bot_id).values(**values))
    return state


def store_transcript(conn: Connection, meeting_id: int, bot_id: str, utterances: list[dict[str, Any]]) -> int:
    rows = [
        {
            "meeting_id": meeting_id,
            "bot_id": bot_id,
            "sequence": i,
            "speaker_name": u.get("speaker_name"),
            "speaker_uuid": u.get("speaker_uuid"),
            "timestamp_ms": int(u.get("timestamp_ms") or 0),
            "duration_ms": u.get("duration_ms"),
            "text": _utterance_text(u.get("transcription")),
        }
        for i, u in enumerate(utterances)
    ]
    return upsert(conn, MeetingTranscript.__table__, rows, ["bot_id", "sequence"])


def _utterance_text(transcription: Any) -> str:
    # Attendee gives {"transcript": "..."} (or a bare string from some providers).
    if isinstance(transcription, dict):
        return str(transcription.get("transcript") or "")
    return str(transcription or "")


def bots_to_poll(conn: Connection) -> list[str]:
    """Bots Attendee may still change: not terminal, or ended with the transcript not stored."""
    return list(
        conn.execute(
            select(MeetingBot.bot_id).where(
                or_(
                    MeetingBot.state.not_in(TERMINAL_STATES),
                    and_(MeetingBot.state == "ended", MeetingBot.transcript_status != "stored"),
                )
            )
        ).scalars()
    )


def cleanup_completed_meetings(
    database: DatabaseResource,
    client: AttendeeClient,
    now: datetime | None = None,
    retention_days: int = RETENTION_DAYS,
) -> dict[str, int]:
    """Finalize meetings that are over (their bot ended, or they ended without one a day ago),
    and past the retention period delete bot data at Attendee and the transcripts here."""
    now = now or datetime.now(UTC)
    with database.begin() as conn:
        over = select(MeetingBot.meeting_id).where(
            MeetingBot.state.in_(["ended", "fatal_error"]),
            or_(MeetingBot.state == "fatal_error", MeetingBot.transcript_status == "stored"),
        )
        finalized = conn.execute(
            update(Meeting)
            .where(
                Meeting.status == "upcoming",
                or_(Meeting.id.in_(over), Meeting.end_time < now - LOOKBACK),
                Meeting.id.not_in(
                    select(MeetingBot.meeting_id).where(MeetingBot.state.not_in(TERMINAL_STATES))
                ),
            )
            .values(status="completed", finalized_at=now, updated_at=now)
        ).rowcount
        expired = conn.execute(
            select(MeetingBot.bot_id, MeetingBot.meeting_id)
            .join(Meeting, Meeting.id == MeetingBot.meeting_id)
            .where(
                Meeting.status == "completed",
                Meeting.finalized_at < now - timedelta(days=retention_days),
                MeetingBot.data_deleted_at.is_(None),
                MeetingBot.state.in_(["ended", "fatal_error"]),
            )
        ).all()
    for bot_id, _meeting_id in expired:
        try:
            client.delete_data(bot_id)
        except AttendeeError as exc:
            if exc.status != 404:
                raise
        with database.begin() as conn:
            conn.execute(MeetingTranscript.__table__.delete().where(MeetingTranscript.bot_id == bot_id))
            conn.execute(
                update(MeetingBot)
                .where(MeetingBot.bot_id == bot_id)
                .values(data_deleted_at=now, updated_at=now)
            )
    return {"meetings_finalized": finalized, "bot_data_deleted": len(expired)}
