""" "Sync now" and a user's sync status, for the frontend.

Sync now takes the push path: one `webhook_inbox` row per service, from that service's own
Google source, so the inbox sensor routes it to the service's sync job and batches it with every
other notification (nothing in the sensor knows the frontend). The rows are told apart by their
dedup key (``frontend:<user>:<service>:<id>``), a null channel and a ``requested_by`` payload;
a request while an earlier one still waits for a run is answered with that row (double clicks
do not pile up). A row a run has already claimed does not count: the change the user is waiting
for may postdate that run's listing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from sunny_pipelines.db.grants import grant_is_usable
from sunny_pipelines.db.models import GoogleConnection, SyncState, User, WebhookInbox
from sunny_pipelines.vocabulary import InboxStatus, Service, Source
from sunny_pipelines.webhooks.inbox import insert_inbox_row

# The services a user can ask to sync, and the inbox source each one's domain answers (the
# test suite checks this against the domains' registrations).
SYNC_SOURCES: dict[Service, Source] = {
    Service.CALENDAR: Source.GOOGLE_CALENDAR,
    Service.DRIVE: Source.GOOGLE_DRIVE,
    Service.GMAIL: Source.GOOGLE_GMAIL,
}
REQUESTED_BY = "frontend"


class UnknownUser(LookupError):
    pass


class GrantNotUsable(Exception):
    """The user's Google grant cannot be used (none, needs re-consent, revoked): a sync would fail."""

    def __init__(self, user_status: str, grant_status: str | None) -> None:
        super().__init__(
            f"user is {user_status}, Google connection is {grant_status or 'missing'}: reconnect Google first"
        )
        self.grant_status = grant_status


def dedup_prefix(user_id: str, service: Service) -> str:
    return f"{REQUESTED_BY}:{user_id}:{service.value}:"


@dataclass(frozen=True)
class SyncRequested:
    service: Service
    inbox_id: int
    # False: an earlier request still waits for its run, and answers this one too.
    queued: bool


def _user_and_grant(conn: Connection, user_id: str, *, lock: bool = False) -> tuple[str, str | None]:
    query = (
        select(User.status, GoogleConnection.status)
        .join(GoogleConnection, GoogleConnection.user_id == User.id, isouter=True)
        .where(User.id == user_id)
    )
    if lock:
        # Serializes sync-now requests of one user, so two clicks cannot both insert.
        query = query.with_for_update(of=User)
    row = conn.execute(query).first()
    if row is None:
        raise UnknownUser(user_id)
    return row[0], row[1]


def request_sync(conn: Connection, user_id: str, services: Sequence[Service]) -> list[SyncRequested]:
    """Write (or find, if one still waits) a pending inbox row per service for ``user_id``."""
    user_status, grant_status = _user_and_grant(conn, user_id, lock=True)
    if not grant_is_usable(user_status, grant_status):
        raise GrantNotUsable(user_status, grant_status)
    answers = []
    for service in dict.fromkeys(services):
        source = SYNC_SOURCES[service]
        waiting = conn.execute(
            select(WebhookInbox.id)
            .where(
                WebhookInbox.user_id == user_id,
                WebhookInbox.source == source,
                WebhookInbox.status == InboxStatus.PENDING,
                WebhookInbox.claimed_by.is_(None),
                WebhookInbox.dedup_key.startswith(dedup_prefix(user_id, service), autoescape=True),
            )
            .order_by(WebhookInbox.id)
            .limit(1)
        ).scalar_one_or_none()
        if waiting is not None:
            answers.append(SyncRequested(service, waiting, queued=False))
            continue
        inbox_id = insert_inbox_row(
            conn,
            source=source,
            user_id=user_id,
            dedup_key=dedup_prefix(user_id, service) + uuid.uuid4().hex,
            payload={"requested_by": REQUESTED_BY, "request": "sync_now", "sync": service.value},
        )
        assert inbox_id is not None  # a fresh uuid never collides
        answers.append(SyncRequested(service, inbox_id, queued=True))
    return answers


def sync_status(conn: Connection, user_id: str) -> dict[str, Any]:
    """The user's grant (never a token) and, per service, its `sync_state` row and the
    notifications waiting for a run. The Google services are always listed (never synced: empty)."""
    grant = conn.execute(
        select(
            User.status.label("user_status"),
            GoogleConnection.status,
            GoogleConnection.google_email,
            GoogleConnection.scopes,
            GoogleConnection.expires_at,
            GoogleConnection.last_validated_at,
            GoogleConnection.last_error,
        )
        .join(GoogleConnection, GoogleConnection.user_id == User.id, isouter=True)
        .where(User.id == user_id)
    ).first()
    if grant is None:
        raise UnknownUser(user_id)
    states = {
        row.service: row
        for row in conn.execute(select(SyncState.__table__).where(SyncState.user_id == user_id))
    }
    pending = dict(
        conn.execute(
            select(WebhookInbox.source, func.count())
            .where(WebhookInbox.user_id == user_id, WebhookInbox.status == InboxStatus.PENDING)
            .group_by(WebhookInbox.source)
        ).all()
    )
    names = [service.value for service in SYNC_SOURCES] + sorted(
        set(states) - {s.value for s in SYNC_SOURCES}
    )
    services = []
    for name in names:
        state = states.get(name)
        source = SYNC_SOURCES.get(Service(name)) if name in Service._value2member_map_ else None
        services.append(
            {
                "service": name,
                "last_synced_at": state.last_synced_at if state else None,
                "interval_seconds": state.interval_seconds if state else None,
                "last_change_count": state.last_change_count if state else None,
                "last_error": state.last_error if state else None,
                "consecutive_failures": state.consecutive_failures if state else 0,
                "pending_notifications": int(pending.get(source, 0)) if source else 0,
            }
        )
    return {
        "user_id": user_id,
        "user_status": grant.user_status,
        "grant": {
            "status": grant.status,
            "google_email": grant.google_email,
            "scopes": list(grant.scopes or []),
            "access_token_expires_at": grant.expires_at,
            "last_validated_at": grant.last_validated_at,
            "last_error": grant.last_error,
        }
        if grant.status is not None
        else None,
        "services": services,
    }
