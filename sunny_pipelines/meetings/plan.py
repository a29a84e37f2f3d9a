"""What to do with a meeting's bot, as plain functions: the meeting's identity at Attendee, when
a bot joins, and the one action (create, move, delete, nothing) that brings Attendee in line with
what the meeting's participants want."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

# Attendee's states in which a bot will not do anything more.
TERMINAL_STATES = frozenset({"ended", "fatal_error", "deleted", "data_deleted"})
# A bot that went to the meeting (and ended, or failed): the meeting gets no second one.
WENT_STATES = frozenset({"ended", "fatal_error", "data_deleted"})
# The only state in which Attendee lets a bot be moved or deleted.
SCHEDULED = "scheduled"


def meeting_dedup_key(meeting_url: str, start_time: datetime) -> str:
    """The meeting's identity: its normalized URL and start, as first seen. It is the bot's
    Attendee `deduplication_key` too, so two runs can never book two bots for one meeting."""
    digest = hashlib.sha256(f"{meeting_url}|{start_time.isoformat()}".encode()).hexdigest()
    return f"sunny-{digest[:40]}"


def join_time(start_time: datetime, minutes_before: int, now: datetime) -> datetime:
    """A few minutes before the start; at once for a meeting about to start or under way.
    Whole seconds: Attendee echoes join_at back, and a move compares it."""
    return max(start_time - timedelta(minutes=minutes_before), now).replace(microsecond=0)


class BotAction(StrEnum):
    CREATE = "create"
    MOVE = "move"
    DELETE = "delete"
    NONE = "none"


@dataclass(frozen=True)
class BotPlan:
    action: BotAction
    reason: str
    join_at: datetime | None = None


def plan_bot(
    *,
    wanted: bool,
    join_at: datetime,
    bot_state: str | None,
    bot_join_at: datetime | None,
) -> BotPlan:
    """The action for one meeting: ``wanted`` when at least one participant's rules ask for a
    bot; ``bot_state``/``bot_join_at`` describe its latest bot (None: it never had one)."""
    if bot_state in WENT_STATES:
        # Meetings are one occurrence each: once its bot has been (or failed), never a second.
        return BotPlan(BotAction.NONE, f"the meeting's bot is {bot_state}: no second bot")
    live = bot_state is not None and bot_state not in TERMINAL_STATES
    if wanted:
        if not live:
            return BotPlan(BotAction.CREATE, "a participant wants a bot and the meeting has none", join_at)
        if bot_state == SCHEDULED and bot_join_at != join_at:
            return BotPlan(BotAction.MOVE, f"the meeting moved: join at {join_at.isoformat()}", join_at)
        return BotPlan(BotAction.NONE, f"the bot is {bot_state} as wanted")
    if not live:
        return BotPlan(BotAction.NONE, "no participant wants a bot and there is none")
    if bot_state == SCHEDULED:
        return BotPlan(BotAction.DELETE, "no participant wants a bot any more")
    # Already joining or in the meeting: Attendee cannot delete it; it leaves when the meeting ends.
    return BotPlan(BotAction.NONE, f"no participant wants a bot, but it is already {bot_state}")
