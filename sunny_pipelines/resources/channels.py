"""Google push channels, whatever they watch: recorded in `watch_channels`, opened as web_hook
channels with a per-channel secret token, never extended, only replaced by a new id.

A domain says what it wants watched (a list of ``(kind, target)``) and how to ask Google for a
channel on one target; `plan_channels` and `ensure_channels` do the rest.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from googleapiclient.errors import HttpError
from sqlalchemy import Connection, delete, select, update

from sunny_pipelines.db.grants import user_is_present
from sunny_pipelines.db.models import GoogleConnection, User, WatchChannel
from sunny_pipelines.db.secrets import channel_token_digest, new_channel_token
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleGrantError, GoogleResource, GoogleSession, http_status
from sunny_pipelines.vocabulary import ChannelKind, ChannelStatus, GrantStatus

# What a channel watches: (kind, target), target None for a per-user collection.
Target = tuple[str, str | None]
# Stops one channel at Google.
StopAtGoogle = Callable[["Channel"], Any]
# Builds the watch request for one target from the channel body (`events.watch`, `changes.watch`).
WatchRequest = Callable[[str | None, dict[str, Any]], Any]


@dataclass(frozen=True)
class Channel:
    id: str
    service: str
    target: str | None
    resource_id: str | None
    expires_at: datetime | None


@dataclass
class ChannelPlan:
    to_open: list[Target]
    to_replace: list[Channel]  # stopped once their successor is open
    to_stop: list[Channel]  # what they watch is no longer wanted


def plan_channels(
    wanted: list[Target], active: list[Channel], now: datetime, renew_within: timedelta
) -> ChannelPlan:
    """Which channels to open, replace and stop so that every wanted target is watched by one
    channel that lives beyond ``now + renew_within``."""
    by_target: dict[Target, list[Channel]] = {}
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


def active_channels(conn: Connection, user_id: str, kinds: Collection[str]) -> list[Channel]:
    rows = conn.execute(
        select(
            WatchChannel.id,
            WatchChannel.service,
            WatchChannel.target,
            WatchChannel.resource_id,
            WatchChannel.expires_at,
        ).where(
            WatchChannel.user_id == user_id,
            WatchChannel.service.in_(list(kinds)),
            WatchChannel.status == ChannelStatus.ACTIVE,
        )
    )
    return [Channel(*row) for row in rows]


def fresh_targets(
    conn: Connection, horizon: datetime, kinds: Collection[str]
) -> set[tuple[str, str, str | None]]:
    """(user, kind, target) of every active channel of ``kinds`` that outlives ``horizon``."""
    rows = conn.execute(
        select(
            WatchChannel.user_id, WatchChannel.service, WatchChannel.target, WatchChannel.expires_at
        ).where(WatchChannel.status == ChannelStatus.ACTIVE, WatchChannel.service.in_(list(kinds)))
    )
    return {
        (user_id, kind, target)
        for user_id, kind, target, expires_at in rows
        if (expires_at or horizon) > horizon
    }


def ensure_channels(
    database: DatabaseResource,
    user_id: str,
    wanted: list[Target],
    kinds: Collection[str],
    *,
    watch: WatchRequest,
    execute: Callable[[Any], Any],
    stop_at_google: StopAtGoogle,
    address: str,
    lifetime: timedelta,
    renew_within: timedelta,
    now: datetime | None = None,
) -> ChannelResult:
    """Open missing channels of ``kinds``, replace expiring ones, stop unwanted ones."""
    now = now or datetime.now(UTC)
    with database.begin() as conn:
        plan = plan_channels(wanted, active_channels(conn, user_id, kinds), now, renew_within)
    result = ChannelResult()
    for kind, target in plan.to_open:
        open_channel(database, user_id, kind, target, address, now + lifetime, watch, execute)
        result.opened += 1
    for channel in plan.to_replace:
        stop_channel(database, channel, ChannelStatus.REPLACED, stop_at_google)
        result.replaced += 1
    for channel in plan.to_stop:
        stop_channel(database, channel, ChannelStatus.STOPPED, stop_at_google)
        result.stopped += 1
    return result


def open_channel(
    database: DatabaseResource,
    user_id: str,
    kind: str,
    target: str | None,
    address: str,
    requested_expiry: datetime,
    watch: WatchRequest,
    execute: Callable[[Any], Any],
) -> str:
    """Open one web_hook channel; the expiration is always explicit (Drive's default is 1 hour)."""
    channel_id = str(uuid.uuid4())
    token = new_channel_token()
    # The row exists before Google can send the first notification on the channel.
    with database.begin() as conn:
        conn.execute(
            WatchChannel.__table__.insert().values(
                id=channel_id,
                user_id=user_id,
                service=kind,
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
    try:
        response = execute(watch(target, body))
    except Exception:
        with database.begin() as conn:
            conn.execute(delete(WatchChannel).where(WatchChannel.id == channel_id))
        raise
    # Google may grant less than asked: its expiration is the truth.
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


def web_hook_stopper(channels_api: Any, execute: Callable[[Any], Any]) -> StopAtGoogle:
    """How a web_hook channel is stopped: `channels.stop` of the API that opened it."""
    return lambda channel: execute(
        channels_api.stop(body={"id": channel.id, "resourceId": channel.resource_id})
    )


def stop_channel(
    database: DatabaseResource,
    channel: Channel,
    status: ChannelStatus,
    stop_at_google: StopAtGoogle | None = None,
) -> None:
    """Ask Google to stop the channel (when we still can), then record it as no longer active."""
    if stop_at_google is not None and channel.resource_id:
        try:
            stop_at_google(channel)
        except HttpError as exc:
            if http_status(exc) != 404:  # 404: already gone at Google
                raise
    record_stopped(database, channel.id, status)


def record_stopped(database: DatabaseResource, channel_id: str, status: ChannelStatus) -> None:
    with database.begin() as conn:
        conn.execute(
            update(WatchChannel)
            .where(WatchChannel.id == channel_id)
            .values(status=status, stopped_at=datetime.now(UTC))
        )


def departed_users_channels(
    conn: Connection, kinds: Collection[str]
) -> list[tuple[str, Channel, str | None]]:
    """Active channels of ``kinds`` of users who left: (user id, channel, grant status)."""
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
        .where(WatchChannel.status == ChannelStatus.ACTIVE, WatchChannel.service.in_(list(kinds)))
    )
    return [
        (user_id, Channel(cid, service, target, resource_id, expires_at), grant)
        for user_id, cid, service, target, resource_id, expires_at, user_status, grant in rows
        if not user_is_present(user_status, grant)
    ]


def stop_departed_channels(
    log: Any,
    google: GoogleResource,
    database: DatabaseResource,
    kinds: Collection[str],
    stopper: Callable[[GoogleSession], StopAtGoogle],
) -> int:
    """Stop the channels of ``kinds`` of users who left: at Google while their grant still
    allows, else only locally (the channel then expires at Google by itself)."""
    with database.begin() as conn:
        departed = departed_users_channels(conn, kinds)
    for user_id, channel, grant in departed:
        stop_at_google = None
        if grant == GrantStatus.ACTIVE:
            try:
                stop_at_google = stopper(google.session(user_id))
            except GoogleGrantError as exc:
                log.info(f"channel {channel.id}: cannot stop at Google ({exc.reason}); it will expire")
        try:
            stop_channel(database, channel, ChannelStatus.STOPPED, stop_at_google)
        except Exception as exc:  # keep going: the channel expires at Google by itself
            log.warning(f"channel {channel.id} of user {user_id}: {exc}; marked stopped locally")
            record_stopped(database, channel.id, ChannelStatus.STOPPED)
    log.info(f"stopped {len(departed)} {'/'.join(kinds)} channels of departed users")
    return len(departed)


def record_expired(database: DatabaseResource, kinds: Collection[str], now: datetime | None = None) -> int:
    """Mark ``kinds`` channels past their expiration `expired` (Google has dropped them already)."""
    now = now or datetime.now(UTC)
    with database.begin() as conn:
        return conn.execute(
            update(WatchChannel)
            .where(
                WatchChannel.status == ChannelStatus.ACTIVE,
                WatchChannel.service.in_(list(kinds)),
                WatchChannel.expires_at < now,
            )
            .values(status=ChannelStatus.EXPIRED, stopped_at=now)
        ).rowcount


def stopper_for_kind(session: GoogleSession, kind: str) -> StopAtGoogle | None:
    """How a channel of ``kind`` is stopped at Google (each API stops its own channels), for
    callers that stop every channel of a user whatever its domain; None for a kind it does not know."""
    if kind in (ChannelKind.CALENDAR_EVENTS, ChannelKind.CALENDAR_LIST):
        return web_hook_stopper(session.calendar().channels(), session.execute)
    if kind == ChannelKind.DRIVE_CHANGES:
        return web_hook_stopper(session.drive().channels(), session.execute)
    if kind == ChannelKind.GMAIL_MAILBOX:
        return lambda channel: session.execute(session.gmail().users().stop(userId="me"))
    return None


def stop_user_channels(log: Any, google: GoogleResource, database: DatabaseResource, user_id: str) -> int:
    """Stop every active channel of ``user_id``: at Google while the stored grant still allows
    (whatever its status), else only here; a channel recorded stopped is refused by the receiver
    and Google drops it when it expires. How many were stopped."""
    with database.begin() as conn:
        channels = [
            Channel(*row)
            for row in conn.execute(
                select(
                    WatchChannel.id,
                    WatchChannel.service,
                    WatchChannel.target,
                    WatchChannel.resource_id,
                    WatchChannel.expires_at,
                ).where(WatchChannel.user_id == user_id, WatchChannel.status == ChannelStatus.ACTIVE)
            )
        ]
    if not channels:
        return 0
    session: GoogleSession | None = None
    try:
        session = GoogleSession(google, user_id, any_status=True)
        session.ensure_fresh_token()
    except GoogleGrantError as exc:
        log.info(f"user {user_id}: channels stopped here only, Google refuses the grant ({exc.reason})")
        session = None
    for channel in channels:
        stopper = stopper_for_kind(session, channel.service) if session is not None else None
        try:
            stop_channel(database, channel, ChannelStatus.STOPPED, stopper)
        except Exception as exc:  # the channel expires at Google by itself
            log.warning(
                f"channel {channel.id} of user {user_id} not stopped at Google ({type(exc).__name__}: "
                f"{str(exc)[:200]}); recorded stopped"
            )
            record_stopped(database, channel.id, ChannelStatus.STOPPED)
            if isinstance(exc, GoogleGrantError):
                session = None  # no use trying the user's other channels
    return len(channels)
