"""Storing Google grants: what the frontend's OAuth callback does, also used by the sandbox."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from sunny_pipelines.db.models import GoogleConnection, SyncState, User
from sunny_pipelines.db.upserts import upsert
from sunny_pipelines.resources.cipher import TokenCipher

# Default cadence per service, in seconds (the old beat table's intervals).
DEFAULT_SYNC_INTERVALS = {"calendar": 30 * 60}


def store_google_grants(conn: Connection, cipher: TokenCipher, grants: Iterable[Mapping[str, Any]]) -> int:
    """Create or update users and their active Google connections, tokens encrypted.

    Each grant: ``id``, ``email``, ``name``, ``timezone``, ``access_token``, ``refresh_token``,
    ``expires_in`` (seconds), ``scopes``. Re-consent reactivates a ``needs_reauth`` connection.
    """
    now = datetime.now(UTC)
    users, connections, states = [], [], []
    for grant in grants:
        users.append(
            {
                "id": grant["id"],
                "email": grant["email"],
                "name": grant.get("name"),
                "timezone": grant.get("timezone") or "UTC",
                "status": "active",
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
                "status": "active",
                "last_error": None,
            }
        )
        for service, interval in DEFAULT_SYNC_INTERVALS.items():
            states.append({"user_id": grant["id"], "service": service, "interval_seconds": interval})
    upsert(conn, User.__table__, users, ["id"])
    upsert(conn, GoogleConnection.__table__, connections, ["user_id"])
    # Existing sync state (cursors, tuned intervals) is kept.
    upsert(conn, SyncState.__table__, states, ["user_id", "service"], update_columns=[])
    return len(users)
