"""Google Calendar push channels: one `events.watch` channel per synced calendar and one
`calendarList.watch` channel per user, each with its own secret token.

Channels are never extended, only replaced: a channel expiring within ``RENEW_WITHIN`` gets a
successor with a new id, then the old one is stopped.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from googleapiclient.errors import HttpError
from sqlalchemy import Connection, delete, select, update

from sunny_pipelines.db.grants import usable_grant_clause, user_is_present
from sunny_pipelines.db.models import GoogleConnection, User, UserCalendar, WatchChannel
from sunny_pipelines.db.secrets import channel_token_digest, new_channel_token
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleSession
from sunny_pipelines.vocabulary import ChannelKind, ChannelStatus

EVENTS_CHANNEL = ChannelKind.CALENDAR_EVENTS
LIST_CHANNEL = ChannelKind.CALENDAR_LIST
CHANNEL_LIFETIME = timedelta(days=7)
# Renewal runs every 6 h; 26 h leaves several chances before a channel lapses.
RENEW_WITHIN = timedelta(hours=26)
WEBHOOK_PATH = "/webhooks/google/calendar"


@dataclass(frozen=True)
class Channel:
    id: str
    service: str
    target: str | None
    resource_id: str | None
    expires_at: datetime | None


@dataclass
class ChannelPlan:
    to_open: list[tuple[str, str | None]]  # (service, target)
    to_replace: list[Channel]  # stopped once their successor is open
    to_stop: list[Channel]  # their calendar left the user's list


def plan_channels(
    calendar_ids: list[str], active: list[Channel], now: datetime, renew_within: timedelta = RENEW_WITHIN
) -> ChannelPlan:
    """Which channels to open, replace and stop so that every calendar and the list are watched."""
    wanted: list[tuple[str, str | None]] = [(LIST_CHANNEL, None)] + [
        (EVENTS_CHANNEL, cid) for cid in calendar_ids
    ]
    by_target: dict[tuple[str, str | None], list[Channel]] = {}
    for channel in active:
        by_target.setdefault((channel.service, channel.target), []).append(channel)
    plan = ChannelPlan([], [], [])
    horizon = now + renew_within
    for target in wanted:
        channels = by_target.pop(target, [])
        fresh = [c for c in channels if (c.expires_at or now) > horizon]
        if not fresh:
            plan.to_open.append(target)
            plan.to_replace.extend(channels)
        else:
            # Keep the longest-lived one; extra channels on one target only duplicate notifications.
            keep = max(fresh, key=lambda c: c.expires_at or now)
            plan.to_replace.extend(c for c in channels if c is not keep)
    for leftovers in by_target.values():
        plan.to_stop.extend(leftovers)
    return plan


@dataclass
class ChannelResult:
    opened: int = 0
    replaced: int = 0
    stopped: int = 0

    def metadata(self) -> dict[str, int]:
        return {
            "channels_opened": self.opened,
            "channels_replaced": self.replaced,
            "channels_stopped": self.stopped,
        }


def active_channels(conn: Connection, user_id: str) -> list[Channel]:
    rows = conn.execute(
        select(
            WatchChannel.id,
            WatchChannel.service,
            WatchChannel.target,
            WatchChannel.resource_id,
            WatchChannel.expires_at,
        ).where(
            WatchChannel.user_id == user_id,
            WatchChannel.service.in_([EVENTS_CHANNEL, LIST_CHANNEL]),
            WatchChannel.status == ChannelStatus.ACTIVE,
        )
    )
    return [Channel(*row) for row in rows]


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
    now = now or datetime.now(UTC)
    with database.begin() as conn:
        plan = plan_channels(
            live_calendar_ids(conn, user_id), active_channels(conn, user_id), now, renew_within
        )
    result = ChannelResult()
    address = push_receiver_url.rstrip("/") + WEBHOOK_PATH
    for service, target in plan.to_open:
        open_channel(session, database, user_id, service, target, address, now)
        result.opened += 1
    for channel in plan.to_replace:
        stop_channel(session, database, channel, ChannelStatus.REPLACED)
        result.replaced += 1
    for channel in plan.to_stop:
        stop_channel(session, database, channel, ChannelStatus.STOPPED)
        result.stopped += 1
    return result


def open_channel(
    session: GoogleSession,
    database: DatabaseResource,
    user_id: str,
    service: str,
    target: str | None,
    address: str,
    now: datetime,
) -> str:
    channel_id = str(uuid.uuid4())
    token = new_channel_token()
    requested_expiry = now + CHANNEL_LIFETIME
    # The row exists before Google can send the first notification on the channel.
    with database.begin() as conn:
        conn.execute(
            WatchChannel.__table__.insert().values(
                id=channel_id,
                user_id=user_id,
                service=service,
                target=target,
                token_hash=channel_token_digest(token),
                address=address,
                expires_at=requested_expiry,
                status=ChannelStatus.ACTIVE,
            )
        )
    body = {
        "id": channel_id,
        "type": "web_hook",
        "address": address,
        "token": token,
        "expiration": str(int(requested_expiry.timestamp() * 1000)),
    }
    api = session.calendar()
    request: Any = (
        api.calendarList().watch(body=body)
        if service == LIST_CHANNEL
        else api.events().watch(calendarId=target, body=body)
    )
    try:
        response = session.execute(request)
    except Exception:
        with database.begin() as conn:
            conn.execute(delete(WatchChannel).where(WatchChannel.id == channel_id))
        raise
    expires_at = (
        datetime.fromtimestamp(int(response["expiration"]) / 1000, UTC)
        if response.get("expiration")
        else requested_expiry
    )
    with database.begin() as conn:
        conn.execute(
            update(WatchChannel)
            .where(WatchChannel.id == channel_id)
            .values(resource_id=response.get("resourceId"), expires_at=expires_at)
        )
    return channel_id


def stop_channel(
    session: GoogleSession | None, database: DatabaseResource, channel: Channel, status: ChannelStatus
) -> None:
    """Ask Google to stop the channel (when we still can), then record it as no longer active."""
    if session is not None and channel.resource_id:
        try:
            session.execute(
                session.calendar().channels().stop(body={"id": channel.id, "resourceId": channel.resource_id})
            )
        except HttpError as exc:
            if int(getattr(exc.resp, "status", 0) or 0) != 404:  # 404: already gone at Google
                raise
    with database.begin() as conn:
        conn.execute(
            update(WatchChannel)
            .where(WatchChannel.id == channel.id)
            .values(status=status, stopped_at=datetime.now(UTC))
        )


def departed_users_channels(conn: Connection) -> list[tuple[str, Channel, str | None]]:
    """Active calendar channels of users who left: (user id, channel, grant status)."""
    rows = conn.execute(
        select(
            WatchChannel.user_id,
            WatchChannel.id,
            WatchChannel.service,
            WatchChannel.target,
            WatchChannel.resource_id,
            WatchChannel.expires_at,
            User.status,
            GoogleConnection.status,
        )
        .join(User, User.id == WatchChannel.user_id)
        .outerjoin(GoogleConnection, GoogleConnection.user_id == WatchChannel.user_id)
        .where(
            WatchChannel.status == ChannelStatus.ACTIVE,
            WatchChannel.service.in_([EVENTS_CHANNEL, LIST_CHANNEL]),
        )
    )
    return [
        (user_id, Channel(cid, service, target, resource_id, expires_at), grant)
        for user_id, cid, service, target, resource_id, expires_at, user_status, grant in rows
        if not user_is_present(user_status, grant)
    ]


def users_with_channel_work(conn: Connection, now: datetime, services: list[str]) -> set[str]:
    """Active users with a usable grant who have synced calendars and a channel of ``services``
    that is missing or expires within ``RENEW_WITHIN``."""
    horizon = now + RENEW_WITHIN
    synced = conn.execute(
        select(UserCalendar.user_id, UserCalendar.calendar_id)
        .join(User, User.id == UserCalendar.user_id)
        .join(GoogleConnection, GoogleConnection.user_id == UserCalendar.user_id)
        .where(UserCalendar.removed_at.is_(None), usable_grant_clause())
    ).all()
    wanted: dict[str, set[tuple[str, str | None]]] = {}
    for user_id, calendar_id in synced:
        targets = wanted.setdefault(user_id, set())
        if LIST_CHANNEL in services:
            targets.add((LIST_CHANNEL, None))
        if EVENTS_CHANNEL in services:
            targets.add((EVENTS_CHANNEL, calendar_id))
    fresh = {
        (user_id, service, target)
        for user_id, service, target, expires_at in conn.execute(
            select(
                WatchChannel.user_id, WatchChannel.service, WatchChannel.target, WatchChannel.expires_at
            ).where(WatchChannel.status == ChannelStatus.ACTIVE)
        )
        if (expires_at or now) > horizon
    }
    return {
        user_id
        for user_id, targets in wanted.items()
        if any((user_id, service, target) not in fresh for service, target in targets)
    }
