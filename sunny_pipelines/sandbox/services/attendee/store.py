"""Attendee's bots: their state machine on the sandbox clock, their transcripts and their webhooks.

A bot's life, each step due at a time computed from the step before (so that `advance_clock`
plays a whole meeting at once, every event stamped with the time it was due, not the time it was
noticed):

    scheduled --(join_at - STAGE_LEAD)--> staged --(join_at)--> joining --(JOIN)--> joined_recording
    --(meeting length)--> leaving --(LEAVE)--> post_processing --(POST_PROCESSING)--> ended

A bot created without `join_at` (or with one already due) starts at `joining`. `leave` moves a
joining or recording bot to `leaving` at once; a fatal error ends any live bot in `fatal_error`;
`delete_data` turns an ended bot into `data_deleted`. Every state change is a `bot.state_change`
webhook; every utterance, once spoken, a `transcript.update` webhook (all of them by the time the
bot leaves).
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# State names are Attendee's API codes.
SCHEDULED = "scheduled"
STAGED = "staged"
READY = "ready"
JOINING = "joining"
JOINED_RECORDING = "joined_recording"
LEAVING = "leaving"
POST_PROCESSING = "post_processing"
ENDED = "ended"
FATAL_ERROR = "fatal_error"
DATA_DELETED = "data_deleted"
TERMINAL_STATES = frozenset({ENDED, FATAL_ERROR, DATA_DELETED})

STAGE_LEAD_SECONDS = 300  # Attendee stages a scheduled bot a few minutes before join_at
JOIN_SECONDS = 5  # joining -> in the meeting
LEAVE_SECONDS = 2  # leaving -> left
POST_PROCESSING_SECONDS = 10  # left -> recording and transcript final
DEFAULT_MEETING_SECONDS = 1800
# Attendee has no field for how long the meeting lasts; the sandbox reads it from the metadata.
MEETING_SECONDS_METADATA_KEY = "sandbox_meeting_seconds"
UTTERANCE_SPACING_MS = 45_000  # one utterance every 45 s of recording

SPEAKERS = (
    ("Avery Chen", True),
    ("Jordan Patel", False),
    ("Morgan Rivera", False),
    ("Sam Okafor", False),
)
LINES = (
    "Let's start with a quick round of updates.",
    "The calendar sync shipped yesterday and looks stable.",
    "I still see a few duplicate invites in the staging data.",
    "Can we get the numbers from last quarter before Friday?",
    "I'll take the follow-up with the design team.",
    "The main risk is the migration window next week.",
    "Let's keep the scope small and ship the first part.",
    "I'll write up the decision and share it after the call.",
    "Does anyone have blockers we should talk about?",
    "Thanks everyone, let's wrap up here.",
)

Emit = Callable[["Bot", str, dict[str, Any]], None]  # (bot, trigger, data) -> queue a webhook


def iso(ts: float) -> str:
    """Attendee's timestamps: ISO 8601 with microseconds and a Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> float:
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


@dataclass
class Utterance:
    speaker_name: str
    speaker_uuid: str
    speaker_is_host: bool
    timestamp_ms: int  # from the start of the recording
    duration_ms: int
    text: str

    def view(self) -> dict[str, Any]:
        return {
            "speaker_name": self.speaker_name,
            "speaker_uuid": self.speaker_uuid,
            "speaker_user_uuid": None,
            "speaker_is_host": self.speaker_is_host,
            "timestamp_ms": self.timestamp_ms,
            "duration_ms": self.duration_ms,
            "transcription": {"transcript": self.text, "words": None},
        }


@dataclass
class Bot:
    id: str
    seq: int  # creation order (the list's ordering and cursor)
    meeting_url: str
    bot_name: str
    metadata: dict[str, Any] | None
    deduplication_key: str | None
    join_at: float | None
    meeting_seconds: float
    webhooks: list[dict[str, Any]]  # bot-level subscriptions: {"url", "triggers"}
    created_at: float
    state: str
    entered_at: float  # when the current state began
    events: list[dict[str, Any]] = field(default_factory=list)
    transcription_state: str = "not_started"
    recording_state: str = "not_started"
    recording_started_at: float | None = None
    recording_ended_at: float | None = None
    utterances_sent: int = 0  # transcript.update webhooks already queued
    deleted: bool = False  # DELETE of a scheduled bot: gone from the API
    data_deleted: bool = False
    fatal_reason: str | None = None
    fail_on_join: str | None = None  # an armed `attendee_fatal_error`: the reason to fail with

    @property
    def active(self) -> bool:
        return not self.deleted and self.state not in TERMINAL_STATES

    def view(self) -> dict[str, Any]:
        """The API's Bot object."""
        return {
            "id": self.id,
            "metadata": self.metadata if self.metadata is not None else {},
            "meeting_url": self.meeting_url,
            "state": self.state,
            "events": [dict(e) for e in self.events],
            "transcription_state": self.transcription_state,
            "recording_state": self.recording_state,
            # The OpenAPI document declares join_at a non-null date-time: a bot created without one
            # shows its creation time (when it was asked to join).
            "join_at": iso(self.join_at if self.join_at is not None else self.created_at),
            "deduplication_key": self.deduplication_key,
        }

    def truth(self) -> dict[str, Any]:
        """What tests inspect: the API view plus the sandbox's own flags."""
        return {
            **self.view(),
            "bot_name": self.bot_name,
            "created_at": iso(self.created_at),
            "meeting_seconds": self.meeting_seconds,
            "deleted": self.deleted,
            "data_deleted": self.data_deleted,
            "fatal_reason": self.fatal_reason,
            "webhooks": [dict(w) for w in self.webhooks],
        }


class BotStore:
    """Every bot of the sandbox's one Attendee project. Callers hold `lock`."""

    def __init__(self, seed: int, lock: threading.RLock, now: Callable[[], float], emit: Emit) -> None:
        self.lock = lock
        self._now = now
        self._emit = emit
        self._rng = random.Random(f"attendee-{seed}")
        self.bots: dict[str, Bot] = {}
        self._seq = 0

    # -- lookups --------------------------------------------------------------------------------------

    def get(self, bot_id: str) -> Bot | None:
        bot = self.bots.get(bot_id)
        return None if bot is None or bot.deleted else bot

    def active_with_key(self, key: str) -> Bot | None:
        return next((b for b in self.bots.values() if b.deduplication_key == key and b.active), None)

    def listed(self) -> list[Bot]:
        """Visible bots, newest first (Attendee's cursor pagination orders by -created)."""
        return sorted((b for b in self.bots.values() if not b.deleted), key=lambda b: -b.seq)

    # -- changes --------------------------------------------------------------------------------------

    def create(
        self,
        meeting_url: str,
        bot_name: str,
        metadata: dict[str, Any] | None,
        deduplication_key: str | None,
        join_at: float | None,
        meeting_seconds: float,
        webhooks: list[dict[str, Any]],
    ) -> Bot:
        now = self._now()
        self._seq += 1
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        bot_id = "bot_" + "".join(self._rng.choice(alphabet) for _ in range(16))
        bot = Bot(
            id=bot_id,
            seq=self._seq,
            meeting_url=meeting_url,
            bot_name=bot_name,
            metadata=metadata,
            deduplication_key=deduplication_key,
            join_at=join_at,
            meeting_seconds=meeting_seconds,
            webhooks=webhooks,
            created_at=now,
            state=READY,
            entered_at=now,
        )
        self.bots[bot_id] = bot
        if join_at is not None and join_at > now:
            # A scheduled bot has no event yet; Attendee sends no webhook for it either.
            bot.state, bot.entered_at = SCHEDULED, now
        else:
            self._move(bot, JOINING, now, "join_requested")
        self.advance(bot)
        return bot

    def reschedule(self, bot: Bot, join_at: float) -> None:
        bot.join_at = join_at
        self.advance(bot)

    def delete(self, bot: Bot) -> None:
        bot.deleted = True

    def leave(self, bot: Bot) -> None:
        self._move(bot, LEAVING, self._now(), "leave_requested", "user_requested")

    def end_meeting(self, bot: Bot) -> None:
        """Everyone left: the bot leaves now (the test hook that shortens a meeting)."""
        self._move(bot, LEAVING, self._now(), "leave_requested", "auto_leave_only_participant_in_meeting")

    def fail(self, bot: Bot, reason: str) -> None:
        self._move(bot, FATAL_ERROR, self._now(), "fatal_error", reason)

    def delete_data(self, bot: Bot) -> None:
        self._move(bot, DATA_DELETED, self._now(), "data_deletion")

    # -- the clock ------------------------------------------------------------------------------------

    def advance_all(self) -> None:
        for bot in list(self.bots.values()):
            if bot.active:
                self.advance(bot)

    def advance(self, bot: Bot) -> None:
        """Play every step of `bot` due by now, each at the time it was due."""
        now = self._now()
        while bot.active:
            step = self._next_step(bot)
            if step is None or step[0] > now:
                break
            due, state, event_type, sub_type = step
            self._move(bot, state, due, event_type, sub_type)
        self._send_utterances(bot, now)

    def _next_step(self, bot: Bot) -> tuple[float, str, str, str | None] | None:
        join_at = bot.join_at if bot.join_at is not None else bot.created_at
        if bot.state == SCHEDULED:
            return max(join_at - STAGE_LEAD_SECONDS, bot.entered_at), STAGED, "staged", None
        if bot.state == STAGED:
            return max(join_at, bot.entered_at), JOINING, "join_requested", None
        if bot.state == JOINING and bot.fail_on_join:
            return bot.entered_at + JOIN_SECONDS, FATAL_ERROR, "fatal_error", bot.fail_on_join
        if bot.state == JOINING:
            return bot.entered_at + JOIN_SECONDS, JOINED_RECORDING, "bot_joined_meeting", None
        if bot.state == JOINED_RECORDING:
            sub_type = "auto_leave_only_participant_in_meeting"
            return bot.entered_at + bot.meeting_seconds, LEAVING, "leave_requested", sub_type
        if bot.state == LEAVING:
            return bot.entered_at + LEAVE_SECONDS, POST_PROCESSING, "bot_left_meeting", None
        if bot.state == POST_PROCESSING:
            return bot.entered_at + POST_PROCESSING_SECONDS, ENDED, "post_processing_completed", None
        return None

    def _move(self, bot: Bot, state: str, at: float, event_type: str, sub_type: str | None = None) -> None:
        old = bot.state
        if state == JOINED_RECORDING:
            bot.recording_started_at = at
            bot.recording_state = bot.transcription_state = "in_progress"
        if (
            bot.recording_started_at is not None
            and bot.recording_ended_at is None
            and state in (LEAVING, FATAL_ERROR)
        ):
            bot.recording_ended_at = at
            self._send_utterances(bot, at)
        if state == ENDED:
            bot.recording_state = bot.transcription_state = "complete"
        if state == FATAL_ERROR:
            bot.fatal_reason = sub_type
            if bot.recording_state == "in_progress":
                bot.recording_state = bot.transcription_state = "failed"
        if state == DATA_DELETED:
            bot.data_deleted = True
        bot.state, bot.entered_at = state, at
        created = iso(at)
        bot.events.append({"type": event_type, "sub_type": sub_type, "created_at": created})
        self._emit(
            bot,
            "bot.state_change",
            {
                "new_state": state,
                "old_state": old,
                "created_at": created,
                "event_type": event_type,
                "event_sub_type": sub_type,
            },
        )

    # -- transcripts ----------------------------------------------------------------------------------

    def utterances(self, bot: Bot, until: float | None = None) -> list[Utterance]:
        """The utterances spoken by `until` (default now) while the bot recorded; none once the
        data is deleted. Deterministic: the same bot id always says the same things."""
        if bot.data_deleted or bot.recording_started_at is None:
            return []
        end = bot.recording_ended_at if bot.recording_ended_at is not None else self._now()
        if until is not None:
            end = min(end, until)
        elapsed_ms = int((end - bot.recording_started_at) * 1000)
        rng = random.Random(bot.id)
        speaker_uuids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in SPEAKERS]
        out: list[Utterance] = []
        index = 0
        while True:
            start_ms = 2_000 + index * UTTERANCE_SPACING_MS
            duration_ms = 3_000 + rng.randrange(0, 12_000)
            if start_ms + duration_ms > elapsed_ms:
                return out
            speaker = index % len(SPEAKERS)
            name, is_host = SPEAKERS[speaker]
            text = LINES[(index + rng.randrange(len(LINES))) % len(LINES)]
            out.append(Utterance(name, speaker_uuids[speaker], is_host, start_ms, duration_ms, text))
            index += 1

    def _send_utterances(self, bot: Bot, until: float) -> None:
        if bot.recording_started_at is None or bot.data_deleted:
            return
        spoken = self.utterances(bot, until)
        for utterance in spoken[bot.utterances_sent :]:
            self._emit(bot, "transcript.update", utterance.view())
        bot.utterances_sent = max(bot.utterances_sent, len(spoken))
