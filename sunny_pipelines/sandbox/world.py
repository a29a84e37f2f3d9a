"""The sandbox's in-memory world: users and their Google grants, per-service stores, push channels,
injected faults and request counters. Every public method is thread-safe (one re-entrant lock)."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sunny_pipelines.sandbox.calendar_store import CalendarStore
from sunny_pipelines.sandbox.common import (
    ApiError,
    TokenCodec,
    backend_error,
    bad_request,
    http_post,
    not_found,
    rate_limit_error,
    utc_from_ts,
)
from sunny_pipelines.sandbox.notifications import Notifier
from sunny_pipelines.sandbox.push import (
    PUBSUB_SERVICE_ACCOUNT,
    PushSigner,
    attendee_signature,
    canonical_json,
    pubsub_envelope,
)

ACCESS_TOKEN_TTL = 3600
DEFAULT_SCOPES = (
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/calendar",
    "https://www.googleapis.com/auth/drive",
    "https://www.googleapis.com/auth/gmail.modify",
)
DEFAULT_CLIENT_ID = "sandbox-client"
FAULT_KINDS = (
    "latency",
    "rate_limit",
    "server_error",
    "revoke",
    "invalidate_sync_tokens",
    "expire_access_token",
)
_QUEUED_FAULTS = ("latency", "rate_limit", "server_error")


class OAuthError(Exception):
    """An OAuth endpoint error, answered as `{"error": ..., "error_description": ...}`."""

    def __init__(self, error: str, description: str | None = None, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        out = {"error": self.error}
        if self.description:
            out["error_description"] = self.description
        return out


@dataclass
class User:
    id: str
    email: str
    name: str
    timezone: str
    scopes: tuple[str, ...]
    refresh_token: str | None
    status: str = "active"  # active | revoked
    grant_generation: int = 0
    last_access_token: str = ""


@dataclass
class AccessToken:
    token: str
    user_id: str
    expires_at: float
    client_id: str
    scopes: frozenset[str]


@dataclass
class Channel:
    id: str
    resource_key: str  # what it watches, e.g. "calendar-events:<calendar id>"
    resource_id: str
    resource_uri: str
    address: str
    token: str | None
    expiration_ms: int
    user_id: str
    params: dict[str, Any] = field(default_factory=dict)
    stopped: bool = False
    message_number: int = 0


@dataclass
class Fault:
    kind: str
    user_email: str | None
    remaining: int
    latency_ms: int = 0
    status: int | None = None


class World:
    """Everything the sandbox knows. Services keep their data in stores (`self.calendar`; Drive and
    Gmail stores will sit beside it); users, grants, channels, faults and counters are shared here."""

    def __init__(self, seed: int = 1) -> None:
        self.lock = threading.RLock()
        self.seed = seed
        self.codec = TokenCodec()
        self._clock_offset = 0.0
        self.created_at = self.now()
        self.base_url = "http://127.0.0.1"  # set by the server once it knows its port
        self.users: dict[str, User] = {}
        self._by_email: dict[str, User] = {}
        self._access: dict[str, AccessToken] = {}
        self._refresh: dict[str, str] = {}  # refresh token -> user id
        self._latest: dict[str, AccessToken] = {}  # user id -> newest access token
        self.channels: dict[str, Channel] = {}
        self._faults: list[Fault] = []
        self._counts: Counter[tuple[str | None, str]] = Counter()
        self.notification_drop_rate = 0.0
        self.delivered_notifications: list[dict[str, Any]] = []
        self.dropped_notifications = 0
        self.notifier = Notifier(self)
        self.calendar = CalendarStore(self)
        self.signer = PushSigner()

    # -- clock --------------------------------------------------------------------------------------

    def now(self) -> float:
        """Seconds since the epoch as the sandbox sees them (real time plus `advance_clock` shifts)."""
        return time.time() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the sandbox clock forward: tokens and channels expire without waiting."""
        with self.lock:
            self._clock_offset += seconds

    @property
    def anchor(self) -> datetime:
        """Fixed reference for expanding endless series, so instance sets do not drift with time."""
        return utc_from_ts(self.created_at)

    def close(self) -> None:
        self.notifier.shutdown()

    # -- users and grants ---------------------------------------------------------------------------

    def add_user(
        self,
        email: str,
        name: str | None = None,
        timezone: str = "UTC",
        user_id: str | None = None,
        scopes: tuple[str, ...] | list[str] | None = None,
    ) -> dict[str, Any]:
        """Create a user with a grant and a primary calendar (id = email); returns `list_users()`'s view."""
        email = email.strip().lower()
        with self.lock:
            if email in self._by_email:
                raise ValueError(f"user exists: {email}")
            user_id = user_id or f"u{len(self.users) + 1:04d}"
            if user_id in self.users:
                raise ValueError(f"user id exists: {user_id}")
            name = name or email.split("@")[0].replace(".", " ").title()
            user = User(user_id, email, name, timezone, tuple(scopes or DEFAULT_SCOPES), None)
            self.users[user_id] = user
            self._by_email[email] = user
            self._new_grant(user)
            self.calendar.create_calendar(email, email, timezone, kind="primary", owner_id=user_id)
            self.calendar.subscribe(user_id, email, "owner", primary=True)
            return self._public(user)

    def _new_grant(self, user: User) -> None:
        # Refresh tokens are derived from the seed so an app keeps working across sandbox restarts.
        user.grant_generation += 1
        digest = hashlib.sha256(f"{self.seed}:{user.id}:{user.grant_generation}".encode()).hexdigest()
        user.refresh_token = f"1//sbx-{digest[:40]}"
        user.status = "active"
        self._refresh[user.refresh_token] = user.id
        self.issue_access_token(user)

    def user_by_email(self, email: str) -> User | None:
        return self._by_email.get(email.strip().lower())

    def get_user(self, email_or_id: str) -> User:
        with self.lock:
            user = self.users.get(email_or_id) or self.user_by_email(email_or_id)
            if user is None:
                raise KeyError(email_or_id)
            return user

    def _current_token(self, user: User) -> AccessToken | None:
        at = self._latest.get(user.id)
        if at is None or at.token not in self._access or at.expires_at <= self.now() + 300:
            return None
        return at

    def _public(self, user: User) -> dict[str, Any]:
        # A revoked user keeps showing their last (now useless) tokens, as an app that stored them would.
        at = None
        if user.status == "active":
            at = self._current_token(user) or self.issue_access_token(user)
        return {
            "id": user.id,
            "email": user.email,
            "name": user.name,
            "timezone": user.timezone,
            "status": user.status,
            "access_token": at.token if at else user.last_access_token,
            "refresh_token": user.refresh_token,
            "expires_in": int(at.expires_at - self.now()) if at else 0,
            "scopes": list(user.scopes),
        }

    def list_users(self) -> list[dict[str, Any]]:
        """Every user with a currently valid access token (issued on demand) and refresh token."""
        with self.lock:
            return [self._public(u) for u in sorted(self.users.values(), key=lambda u: u.id)]

    def reconnect_user(self, email: str) -> dict[str, Any]:
        """The user consents again: a new grant (new refresh token) replaces a revoked one."""
        with self.lock:
            user = self.get_user(email)
            self._revoke_grant(user)
            self._new_grant(user)
            return self._public(user)

    def issue_access_token(self, user: User, client_id: str = DEFAULT_CLIENT_ID) -> AccessToken:
        with self.lock:
            token = "ya29.sbx-" + secrets.token_urlsafe(36)
            at = AccessToken(token, user.id, self.now() + ACCESS_TOKEN_TTL, client_id, frozenset(user.scopes))
            self._access[token] = at
            self._latest[user.id] = at
            user.last_access_token = token
            return at

    def refresh_access_token(self, refresh_token: str, client_id: str | None = None) -> dict[str, Any]:
        """The token endpoint's refresh grant; raises OAuthError(invalid_grant) for unknown/revoked tokens."""
        with self.lock:
            user_id = self._refresh.get(refresh_token)
            user = self.users.get(user_id) if user_id else None
            if user is None or user.status != "active" or user.refresh_token != refresh_token:
                raise OAuthError("invalid_grant", "Token has been expired or revoked.")
            self._prune_tokens()
            at = self.issue_access_token(user, client_id or DEFAULT_CLIENT_ID)
            return {
                "access_token": at.token,
                "expires_in": ACCESS_TOKEN_TTL,
                "scope": " ".join(user.scopes),
                "token_type": "Bearer",
            }

    def _prune_tokens(self) -> None:
        now = self.now()
        for token in [t for t, at in self._access.items() if at.expires_at <= now]:
            del self._access[token]

    def _revoke_grant(self, user: User) -> None:
        # The refresh token stays on the user (for list_users) but no longer maps to a grant.
        if user.refresh_token:
            self._refresh.pop(user.refresh_token, None)
        user.status = "revoked"
        self._drop_access_tokens(user)

    def _drop_access_tokens(self, user: User) -> None:
        for token in [t for t, at in self._access.items() if at.user_id == user.id]:
            del self._access[token]
        self._latest.pop(user.id, None)

    def revoke_token(self, token: str) -> bool:
        """Revoke an access or refresh token; as at Google, either one revokes the whole grant."""
        with self.lock:
            at = self._access.get(token)
            user_id = at.user_id if at else self._refresh.get(token)
            user = self.users.get(user_id) if user_id else None
            if user is None or user.status != "active":
                return False
            self._revoke_grant(user)
            return True

    def authenticate(self, token: str | None) -> tuple[User, AccessToken] | None:
        if not token:
            return None
        with self.lock:
            at = self._access.get(token)
            if at is None or at.expires_at <= self.now():
                return None
            user = self.users[at.user_id]
            return (user, at) if user.status == "active" else None

    def token_info(self, token: str) -> dict[str, Any] | None:
        with self.lock:
            auth = self.authenticate(token)
            if auth is None:
                return None
            user, at = auth
            return {
                "azp": at.client_id,
                "aud": at.client_id,
                "sub": user.id,
                "scope": " ".join(sorted(at.scopes)),
                "exp": int(at.expires_at),
                "expires_in": max(int(at.expires_at - self.now()), 0),
                "email": user.email,
                "email_verified": True,
                "access_type": "offline",
            }

    # -- faults -------------------------------------------------------------------------------------

    def inject_fault(
        self,
        kind: str,
        user_email: str | None = None,
        count: int = 1,
        latency_ms: int = 0,
        status: int | None = None,
    ) -> None:
        """Make the sandbox misbehave. `user_email=None` means any user (all users for immediate kinds).

        latency / rate_limit / server_error apply to the next `count` API requests; revoke,
        invalidate_sync_tokens and expire_access_token take effect at once.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        with self.lock:
            if user_email is not None and self.user_by_email(user_email) is None:
                raise KeyError(user_email)
            email = user_email.strip().lower() if user_email else None
            if kind in _QUEUED_FAULTS:
                self._faults.append(Fault(kind, email, max(int(count), 0), int(latency_ms), status))
                return
            targets = [self._by_email[email]] if email else list(self.users.values())
            for user in targets:
                if kind == "revoke":
                    self._revoke_grant(user)
                elif kind == "expire_access_token":
                    self._drop_access_tokens(user)
                elif kind == "invalidate_sync_tokens":
                    self.calendar.invalidate_sync_tokens(user.id)

    def take_faults(self, email: str | None) -> tuple[int, ApiError | None]:
        """Consume the queued faults that apply to one API request: (latency ms, error to answer)."""
        with self.lock:
            latency = 0
            error: ApiError | None = None
            for fault in self._faults:
                if fault.remaining <= 0 or (fault.user_email is not None and fault.user_email != email):
                    continue
                if fault.kind == "latency":
                    latency += fault.latency_ms
                    fault.remaining -= 1
                elif error is None:
                    if fault.kind == "rate_limit":
                        error = rate_limit_error(fault.status or 429)
                    else:
                        error = backend_error(fault.status or 503)
                    fault.remaining -= 1
            self._faults = [f for f in self._faults if f.remaining > 0]
            return latency, error

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    # -- counters -----------------------------------------------------------------------------------

    def count_request(self, email: str | None, path: str) -> None:
        with self.lock:
            self._counts[(email, path)] += 1

    def request_count(self, email: str | None = None, path_prefix: str | None = None) -> int:
        """API requests received (any outcome), optionally for one user and/or under a decoded path prefix."""
        email = email.strip().lower() if email else None
        with self.lock:
            return sum(
                n
                for (e, path), n in self._counts.items()
                if (email is None or e == email) and (path_prefix is None or path.startswith(path_prefix))
            )

    def reset_counters(self) -> None:
        with self.lock:
            self._counts.clear()

    # -- calendar -----------------------------------------------------------------------------------

    def calendar_truth(self, email: str) -> dict[str, list[dict[str, Any]]]:
        """For each of the user's calendars: what a full `events.list(singleEvents=True)` returns now."""
        return self.calendar.truth(self.get_user(email).id)

    # -- push channels ------------------------------------------------------------------------------

    def create_channel(
        self,
        user: User,
        body: dict[str, Any],
        target: tuple[str, str, str],
        default_ttl: int = 7 * 86400,
        max_ttl: int = 30 * 86400,
    ) -> dict[str, Any]:
        """A `watch` call: validate the channel body, register it, and queue its `sync` notification."""
        resource_key, resource_id, resource_uri = target
        channel_id = body.get("id")
        address = body.get("address")
        if not channel_id or not isinstance(channel_id, str):
            raise ApiError(400, "required", "Required channel id")
        if body.get("type") not in ("web_hook", "webhook"):
            raise bad_request(f"Invalid value for: type ({body.get('type')!r})")
        if not address or not isinstance(address, str) or not address.startswith(("http://", "https://")):
            raise bad_request("Invalid value for: address", reason="invalidAddress")
        now_ms = int(self.now() * 1000)
        params = body.get("params") or {}
        expiration = now_ms + default_ttl * 1000
        try:
            if body.get("expiration") is not None:
                expiration = int(body["expiration"])
            elif params.get("ttl") is not None:
                expiration = now_ms + int(params["ttl"]) * 1000
        except (TypeError, ValueError):
            raise bad_request("Invalid value for: expiration") from None
        if expiration <= now_ms:
            raise bad_request("Invalid value for: expiration (in the past)")
        expiration = min(expiration, now_ms + max_ttl * 1000)  # Google clamps rather than refusing
        with self.lock:
            if channel_id in self.channels:
                raise bad_request(f"Channel id {channel_id} not unique", reason="channelIdNotUnique")
            channel = Channel(
                channel_id,
                resource_key,
                resource_id,
                resource_uri,
                address,
                body.get("token"),
                expiration,
                user.id,
                params,
            )
            self.channels[channel_id] = channel
            self._send(channel, "sync")
        out = {
            "kind": "api#channel",
            "id": channel_id,
            "resourceId": resource_id,
            "resourceUri": resource_uri,
        }
        if channel.token is not None:
            out["token"] = channel.token
        out["expiration"] = str(expiration)
        return out

    def stop_channel(self, user: User, body: dict[str, Any]) -> None:
        with self.lock:
            channel = self.channels.get(body.get("id") or "")
            if (
                channel is None
                or channel.stopped
                or channel.user_id != user.id
                or (body.get("resourceId") and body["resourceId"] != channel.resource_id)
            ):
                raise not_found(f"Channel '{body.get('id')}' not found for project 'sunny-sandbox'")
            channel.stopped = True

    def live_channels(self, resource_key: str | None = None) -> list[Channel]:
        with self.lock:
            now_ms = self.now() * 1000
            return [
                c
                for c in self.channels.values()
                if not c.stopped
                and c.expiration_ms > now_ms
                and (resource_key is None or c.resource_key == resource_key)
            ]

    def notify(self, resource_key: str) -> None:
        """A watched resource changed: queue an `exists` notification on each of its live channels."""
        with self.lock:
            for channel in self.live_channels(resource_key):
                self._send(channel, "exists")

    def _send(self, channel: Channel, state: str) -> None:
        # Message numbers are assigned here, under the lock, so they increase per channel in send order.
        channel.message_number += 1
        self.notifier.enqueue(channel, state, channel.message_number)

    def set_notification_drop_rate(self, fraction: float) -> None:
        if not 0.0 <= float(fraction) <= 1.0:
            raise ValueError("drop rate must be between 0 and 1")
        with self.lock:
            self.notification_drop_rate = float(fraction)

    def record_notification(self, record: dict[str, Any], dropped: bool = False) -> None:
        with self.lock:
            if dropped:
                self.dropped_notifications += 1
            else:
                self.delivered_notifications.append(record)

    def wait_notifications_idle(self, timeout: float = 5.0) -> bool:
        """Block until every queued notification has been delivered (or dropped); False on timeout."""
        return self.notifier.wait_idle(timeout)

    # -- signed pushes (Pub/Sub for Gmail, Attendee webhooks) ---------------------------------------

    def pubsub_push_jwt(self, audience: str, email: str = PUBSUB_SERVICE_ACCOUNT) -> str:
        """An RS256 OIDC token like the one Pub/Sub push puts in `Authorization: Bearer ...`."""
        return self.signer.id_token(audience, email)

    def pubsub_push(
        self,
        endpoint: str,
        audience: str,
        data: Any,
        attributes: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> int:
        """POST a Pub/Sub push envelope carrying `data` (JSON, base64-encoded) to `endpoint`; the status."""
        body = json.dumps(pubsub_envelope(data, attributes)).encode()
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.pubsub_push_jwt(audience)}",
            "User-Agent": "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)",
        }
        return http_post(endpoint, body, headers, timeout)

    def sign_attendee_payload(self, payload: dict[str, Any], secret_b64: str) -> str:
        """Attendee's `X-Webhook-Signature` for `payload` under the webhook secret (base64)."""
        return attendee_signature(payload, secret_b64)

    def attendee_emit(self, url: str, secret_b64: str, payload: dict[str, Any], timeout: float = 10.0) -> int:
        """Deliver a signed Attendee webhook to `url`; the status. The body is the signed canonical JSON."""
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Signature": self.sign_attendee_payload(payload, secret_b64),
            "User-Agent": "Attendee-Webhook/1.0",
        }
        return http_post(url, canonical_json(payload), headers, timeout)
