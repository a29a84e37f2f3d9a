"""Google Calendar push channels: one `events.watch` channel per synced calendar and one
`calendarList.watch` channel per user, each with its own secret token.

Channels are never extended, only replaced: a channel expiring within ``RENEW_WITHIN`` gets a
successor with a new id, then the old one is stopped (`resources.channels`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from sunny_pipelines.db.grants import usable_grant_clause
from sunny_pipelines.db.models import GoogleConnection, User, UserCalendar
from sunny_pipelines.resources.channels import (
    Channel,
    ChannelPlan,
    ChannelResult,
    Target,
    ensure_channels,
    fresh_targets,
    plan_channels,
    web_hook_stopper,
)
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleSession
from sunny_pipelines.vocabulary import ChannelKind

EVENTS_CHANNEL = ChannelKind.CALENDAR_EVENTS
LIST_CHANNEL = ChannelKind.CALENDAR_LIST
CHANNEL_KINDS = (EVENTS_CHANNEL, LIST_CHANNEL)
CHANNEL_LIFETIME = timedelta(days=7)
# Renewal runs every 6 h; 26 h leaves several chances before a channel lapses.
RENEW_WITHIN = timedelta(hours=26)
RENEWAL_EVERY = timedelta(hours=6)
WEBHOOK_PATH = "/webhooks/google/calendar"


def wanted_targets(calendar_ids: list[str]) -> list[Target]:
    """The list channel and one events channel per calendar."""
    return [(LIST_CHANNEL, None)] + [(EVENTS_CHANNEL, cid) for cid in calendar_ids]


def plan_calendar_channels(
    calendar_ids: list[str], active: list[Channel], now: datetime, renew_within: timedelta = RENEW_WITHIN
) -> ChannelPlan:
    """Which channels to open, replace and stop so that every calendar and the list are watched."""
    return plan_channels(wanted_targets(calendar_ids), active, now, renew_within)


def live_calendar_ids(conn: Connection, user_id: str) -> list[str]:
    return list(
        conn.execute(
            select(UserCalendar.calendar_id)
            .where(UserCalendar.user_id == user_id, UserCalendar.removed_at.is_(None))
            .order_by(UserCalendar.calendar_id)
        ).scalars()
    )


def ensure_calendar_channels(
    session: GoogleSession,
    database: DatabaseResource,
    user_id: str,
    push_receiver_url: str,
    now: datetime | None = None,
    renew_within: timedelta = RENEW_WITHIN,
) -> ChannelResult:
    """Open missing channels, replace expiring ones and stop those of removed calendars."""
    with database.begin() as conn:
        calendar_ids = live_calendar_ids(conn, user_id)
    api = session.calendar()

    def watch(target: str | None, body: dict[str, Any]) -> Any:
        if target is None:
            return api.calendarList().watch(body=body)
        return api.events().watch(calendarId=target, body=body)

    return ensure_channels(
        database,
        user_id,
        wanted_targets(calendar_ids),
        CHANNEL_KINDS,
        watch=watch,
        execute=session.execute,
        stop_at_google=web_hook_stopper(api.channels(), session.execute),
        address=push_receiver_url.rstrip("/") + WEBHOOK_PATH,
        lifetime=CHANNEL_LIFETIME,
        renew_within=renew_within,
        now=now,
    )


def users_with_channel_work(conn: Connection, now: datetime, kinds: list[str]) -> set[str]:
    """Active users with a usable grant who have synced calendars and a channel of ``kinds``
    that is missing or expires within ``RENEW_WITHIN``."""
    synced = conn.execute(
        select(UserCalendar.user_id, UserCalendar.calendar_id)
        .join(User, User.id == UserCalendar.user_id)
        .join(GoogleConnection, GoogleConnection.user_id == UserCalendar.user_id)
        .where(UserCalendar.removed_at.is_(None), usable_grant_clause())
    ).all()
    wanted: dict[str, set[Target]] = {}
    for user_id, calendar_id in synced:
        wanted.setdefault(user_id, set()).update(
            t for t in [(LIST_CHANNEL, None), (EVENTS_CHANNEL, calendar_id)] if t[0] in kinds
        )
    fresh = fresh_targets(conn, now + RENEW_WITHIN, kinds)
    return {
        user_id
        for user_id, targets in wanted.items()
        if any((user_id, kind, target) not in fresh for kind, target in targets)
    }
