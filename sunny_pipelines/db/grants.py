"""Google grants: storing them (what the frontend's OAuth callback does) and the one rule for
when a grant can be used.

A grant is *usable* when its user is active and the connection is active: only then does any
sync, channel or token refresh act for the user. A user is *present* while active with a grant
that is usable or waiting for re-consent: present users keep their `users` partition (operators
see why it fails) and their channels; users who are not present have left.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Connection, and_, select

from sunny_pipelines.db.models import GoogleConnection, User
from sunny_pipelines.db.upserts import upsert
from sunny_pipelines.vocabulary import GrantStatus, UserStatus

PRESENT_GRANT_STATUSES = (GrantStatus.ACTIVE, GrantStatus.NEEDS_REAUTH)


def grant_is_usable(user_status: str | None, grant_status: str | None) -> bool:
    return user_status == UserStatus.ACTIVE and grant_status == GrantStatus.ACTIVE


def user_is_present(user_status: str | None, grant_status: str | None) -> bool:
    return user_status == UserStatus.ACTIVE and grant_status in PRESENT_GRANT_STATUSES


def usable_grant_clause() -> ColumnElement[bool]:
    """`grant_is_usable` as SQL, over a query joining `users` and `google_connections`."""
    return and_(User.status == UserStatus.ACTIVE, GoogleConnection.status == GrantStatus.ACTIVE)


def usable_users(conn: Connection, user_ids: Iterable[str]) -> set[str]:
    """Those of ``user_ids`` who are active and have a usable Google grant."""
    return set(
        conn.execute(
            select(User.id)
            .join(GoogleConnection, GoogleConnection.user_id == User.id)
            .where(User.id.in_(list(user_ids)), usable_grant_clause())
        ).scalars()
    )


def unusable_reason(user_status: str | None, grant_status: str | None, last_error: str | None) -> str | None:
    """Why a user's Google data cannot be synced now (None: it can), in words for operators."""
    if user_status is None:
        return "no such user"
    if user_status != UserStatus.ACTIVE:
        return f"user is {user_status}"
    if grant_status is None:
        return "no Google connection"
    if grant_status != GrantStatus.ACTIVE:
        return f"Google connection is {grant_status}" + (f": {last_error}" if last_error else "")
    return None


def unusable_users(conn: Connection, user_ids: Iterable[str]) -> dict[str, str]:
    """Those of ``user_ids`` without a usable grant, with the reason (`unusable_reason`)."""
    wanted = list(user_ids)
    rows = conn.execute(
        select(User.id, User.status, GoogleConnection.status, GoogleConnection.last_error)
        .join(GoogleConnection, GoogleConnection.user_id == User.id, isouter=True)
        .where(User.id.in_(wanted))
    ).all()
    found = {user_id: (status, grant, error) for user_id, status, grant, error in rows}
    reasons = {user_id: unusable_reason(*found.get(user_id, (None, None, None))) for user_id in wanted}
    return {user_id: reason for user_id, reason in reasons.items() if reason is not None}


def google_address(conn: Connection, user_id: str) -> str:
    """The user's own address: the Google account's, else the Sunny account's (lower case)."""
    google_email, email = conn.execute(
        select(GoogleConnection.google_email, User.email)
        .join(GoogleConnection, GoogleConnection.user_id == User.id, isouter=True)
        .where(User.id == user_id)
    ).one()
    return (google_email or email).lower()


class Encrypter(Protocol):
    def encrypt(self, plaintext: str | None) -> str | None: ...


def store_google_grants(conn: Connection, cipher: Encrypter, grants: Iterable[Mapping[str, Any]]) -> int:
    """Create or update users and their active Google connections, tokens encrypted.

    Each grant: ``id``, ``email``, ``name``, ``timezone``, ``access_token``, ``refresh_token``,
    ``expires_in`` (seconds), ``scopes``. Re-consent reactivates a ``needs_reauth`` connection.
    Sync state rows appear with each service's first sync, with that domain's default interval.
    """
    now = datetime.now(UTC)
    users, connections = [], []
    for grant in grants:
        users.append(
            {
                "id": grant["id"],
                "email": grant["email"],
                "name": grant.get("name"),
                "timezone": grant.get("timezone") or "UTC",
                "status": UserStatus.ACTIVE,
            }
        )
        connections.append(
            {
                "user_id": grant["id"],
                "google_email": grant["email"],
                "access_token": cipher.encrypt(grant["access_token"]),
                "refresh_token": cipher.encrypt(grant["refresh_token"]),
                "expires_at": now + timedelta(seconds=int(grant.get("expires_in", 3600))),
                "scopes": list(grant.get("scopes") or []),
                "status": GrantStatus.ACTIVE,
                "last_error": None,
                "needs_reauth_since": None,
                "revoked_at": None,
            }
        )
    upsert(conn, User.__table__, users, ["id"])
    upsert(conn, GoogleConnection.__table__, connections, ["user_id"])
    return len(users)
