"""Connecting a Google account: the OAuth 2.0 authorization-code flow with `state` and PKCE.

The start endpoint opens a flow (`open_flow`): a random `state`, stored as a digest with its
encrypted PKCE code verifier, and the consent URL (offline access, `prompt=consent`, incremental
scopes, S256 challenge). The callback takes the state at most once (`take_state`: unknown,
expired or used states are refused), exchanges the code with the verifier, reads the account
(`userinfo`), and stores the encrypted grant (`connect_user`), which activates the user; the
users sensor then adds their partition and requests the first syncs.

Plain functions over a connection or over HTTP; no Dagster. Tokens are never logged, never put
in an error: errors name Google's error code only.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlencode

import requests
from sqlalchemy import Connection, delete, func, select, update

from sunny_pipelines.db.grants import Encrypter, store_google_grants
from sunny_pipelines.db.models import GoogleConnection, OAuthState, User
from sunny_pipelines.frontend_api.settings import FrontendSettings

# States older than this are deleted when a new flow opens (a used or abandoned flow has no use).
STATE_RETENTION = timedelta(days=1)
ERROR_CHARS = 500


class ConnectError(Exception):
    """The connect flow refused: ``status`` and a fixed ``code`` for the answer, a ``message``
    for people. Nothing is stored for the user."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


# -- pure parts ----------------------------------------------------------------------------------------


def new_state() -> str:
    return secrets.token_urlsafe(32)


def new_code_verifier() -> str:
    """A PKCE code verifier: 86 characters of the URL-safe alphabet (RFC 7636 allows 43-128)."""
    return secrets.token_urlsafe(64)


def code_challenge(verifier: str) -> str:
    """The S256 challenge: base64url(SHA-256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def state_digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def consent_url(
    settings: FrontendSettings, state: str, challenge: str, redirect_uri: str, login_hint: str | None
) -> str:
    """Google's consent screen for our scopes: a refresh token (offline, asked again with
    `prompt=consent` so that a reconnect always returns one) and earlier grants kept."""
    params = {
        "client_id": settings.google_client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": " ".join(settings.scopes),
        "state": state,
        "access_type": "offline",
        "prompt": "consent",
        "include_granted_scopes": "true",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if login_hint:
        params["login_hint"] = login_hint
    return settings.authorization_url + "?" + urlencode(params)


def missing_scopes(required: Iterable[str], granted: Iterable[str]) -> list[str]:
    """Required scopes the user did not grant (Google's consent lets them untick some)."""
    have = set(granted)
    return [scope for scope in required if scope not in have]


def state_is_expired(created_at: datetime, ttl_seconds: int, now: datetime) -> bool:
    return now - created_at > timedelta(seconds=ttl_seconds)


# -- states --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flow:
    """A flow the callback took: what the token exchange needs."""

    state_hash: str
    redirect_uri: str
    code_verifier: str = field(repr=False)
    scopes: tuple[str, ...] = ()
    # Older than the state TTL: taken (so never usable again) but refused.
    expired: bool = False


class Crypto(Encrypter, Protocol):
    """The token cipher (`db.secrets.TokenCrypto`)."""

    def decrypt(self, ciphertext: str | None) -> str | None: ...


def open_flow(
    conn: Connection,
    crypto: Encrypter,
    settings: FrontendSettings,
    redirect_uri: str,
    login_hint: str | None,
    now: datetime,
) -> str:
    """Store a new flow's state and verifier; returns the consent URL to redirect to."""
    conn.execute(delete(OAuthState).where(OAuthState.created_at < now - STATE_RETENTION))
    state, verifier = new_state(), new_code_verifier()
    conn.execute(
        OAuthState.__table__.insert().values(
            state_hash=state_digest(state),
            code_verifier=crypto.encrypt(verifier),
            redirect_uri=redirect_uri,
            scopes=list(settings.scopes),
            login_hint=login_hint,
            created_at=now,
        )
    )
    return consent_url(settings, state, code_challenge(verifier), redirect_uri, login_hint)


def take_state(conn: Connection, crypto: Crypto, state: str | None, ttl_seconds: int, now: datetime) -> Flow:
    """Take the flow ``state`` names, at most once: it is marked used whatever comes of it, so
    a replayed callback (or a second tab) is refused. Raises ConnectError, writing nothing, for
    a missing, unknown (forged) or already used state; an expired one is taken and marked so
    (``Flow.expired``: the caller refuses it once this is committed)."""
    if not state:
        raise ConnectError(400, "missing_state", "the callback carries no state")
    digest = state_digest(state)
    row = conn.execute(select(OAuthState.__table__).where(OAuthState.state_hash == digest)).first()
    if row is None:
        raise ConnectError(
            400, "unknown_state", "this state was never issued here (forged or from elsewhere)"
        )
    expired = state_is_expired(row.created_at, ttl_seconds, now)
    # Conditional on used_at still being empty: of two concurrent callbacks only one takes it.
    taken = conn.execute(
        update(OAuthState)
        .where(OAuthState.state_hash == digest, OAuthState.used_at.is_(None))
        .values(used_at=now, error="state_expired: the flow was not completed in time" if expired else None)
    ).rowcount
    if not taken:
        raise ConnectError(400, "state_already_used", "this connect flow was already completed or refused")
    return Flow(
        digest, row.redirect_uri, crypto.decrypt(row.code_verifier) or "", tuple(row.scopes or ()), expired
    )


def record_outcome(
    conn: Connection, state_hash: str, *, user_id: str | None = None, error: str | None = None
) -> None:
    conn.execute(
        update(OAuthState)
        .where(OAuthState.state_hash == state_hash)
        .values(user_id=user_id, error=error[:ERROR_CHARS] if error else None)
    )


# -- Google ------------------------------------------------------------------------------------------


def _google_error(response: requests.Response) -> str:
    """Google's error code of a failed answer (never the body: it could echo what we sent)."""
    try:
        body = response.json()
    except ValueError:
        return f"http_{response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):  # Google APIs: {"error": {"code":..., "status": ...}}
        error = error.get("status")
    return str(error)[:100] if error else f"http_{response.status_code}"


def exchange_code(settings: FrontendSettings, code: str, flow: Flow) -> dict[str, Any]:
    """The token endpoint's authorization_code grant, with the flow's PKCE verifier."""
    try:
        response = requests.post(
            settings.token_url,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": flow.redirect_uri,
                "client_id": settings.google_client_id,
                "client_secret": settings.google_client_secret,
                "code_verifier": flow.code_verifier,
            },
            timeout=settings.google_timeout_seconds,
        )
    except requests.RequestException as exc:
        raise ConnectError(502, "google_unavailable", f"token endpoint: {type(exc).__name__}") from None
    if response.status_code >= 500:
        raise ConnectError(502, "google_unavailable", f"token endpoint answered {response.status_code}")
    if response.status_code != 200:
        error = _google_error(response)
        raise ConnectError(400, "token_exchange_failed", f"Google refused the code: {error}")
    token = _json_object(response, "token endpoint")
    if not token.get("access_token"):
        raise ConnectError(502, "google_unavailable", "the token endpoint returned no access token")
    if not token.get("refresh_token"):
        raise ConnectError(
            400, "no_refresh_token", "Google returned no refresh token: offline access was not granted"
        )
    return token


def _get(settings: FrontendSettings, url: str, access_token: str, what: str) -> dict[str, Any]:
    try:
        response = requests.get(
            url, headers={"Authorization": f"Bearer {access_token}"}, timeout=settings.google_timeout_seconds
        )
    except requests.RequestException as exc:
        raise ConnectError(502, "google_unavailable", f"{what}: {type(exc).__name__}") from None
    if response.status_code != 200:
        status = 502 if response.status_code >= 500 else 400
        code = "google_unavailable" if status == 502 else "google_refused"
        raise ConnectError(status, code, f"{what} answered {response.status_code}: {_google_error(response)}")
    return _json_object(response, what)


def _json_object(response: requests.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ConnectError(502, "google_unavailable", f"{what} answered something other than a JSON object")
    return body


def read_account(settings: FrontendSettings, access_token: str) -> dict[str, Any]:
    """The Google account behind the grant: ``sub``, ``email`` (verified), ``name``."""
    info = _get(settings, settings.userinfo_url, access_token, "userinfo")
    if not info.get("sub") or not info.get("email"):
        raise ConnectError(400, "google_refused", "userinfo names no account id or email")
    if info.get("email_verified") is False:
        raise ConnectError(400, "email_not_verified", "the Google account's email is not verified")
    return info


def read_timezone(settings: FrontendSettings, access_token: str) -> str | None:
    """The user's Calendar time zone (new users get it), or None when Calendar does not say."""
    try:
        value = _get(settings, settings.calendar_timezone_url, access_token, "calendar settings").get("value")
    except ConnectError:
        return None
    return value if isinstance(value, str) and value else None


# -- the grant -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connected:
    user_id: str
    email: str
    google_email: str
    scopes: tuple[str, ...]
    new_user: bool


def resolve_user(conn: Connection, google_sub: str, google_email: str) -> Mapping[str, Any] | None:
    """The Sunny user this Google account belongs to: the user created from it (id = Google's
    stable account id), else the one connected to that address, else the one signed up with it."""
    email = google_email.strip().lower()
    for query in (
        select(User.id, User.email, User.name, User.timezone).where(User.id == google_sub),
        select(User.id, User.email, User.name, User.timezone)
        .join(GoogleConnection, GoogleConnection.user_id == User.id)
        .where(func.lower(GoogleConnection.google_email) == email),
        select(User.id, User.email, User.name, User.timezone).where(func.lower(User.email) == email),
    ):
        row = conn.execute(query.limit(1)).mappings().first()
        if row is not None:
            return row
    return None


def connect_user(
    conn: Connection,
    crypto: Encrypter,
    token: Mapping[str, Any],
    account: Mapping[str, Any],
    timezone: str | None,
    granted: Sequence[str],
) -> Connected:
    """Store the grant (tokens encrypted) for the account's user, creating the user if new;
    the user and the connection become active."""
    google_email = str(account["email"]).strip().lower()
    existing = resolve_user(conn, str(account["sub"]), google_email)
    if existing is None:
        user_id, email, name, zone = str(account["sub"]), google_email, account.get("name"), timezone
    else:
        # An existing user keeps their own address, name and time zone.
        user_id, email = existing["id"], existing["email"]
        name, zone = existing["name"] or account.get("name"), existing["timezone"]
    grant = {
        "id": user_id,
        "email": email,
        "name": name,
        "timezone": zone or "UTC",
        "access_token": token["access_token"],
        "refresh_token": token["refresh_token"],
        "expires_in": int(token.get("expires_in") or 3600),
        "scopes": list(granted),
    }
    store_google_grants(conn, crypto, [grant])
    if email != google_email:
        conn.execute(
            update(GoogleConnection)
            .where(GoogleConnection.user_id == user_id)
            .values(google_email=google_email, updated_at=datetime.now(UTC))
        )
    return Connected(user_id, email, google_email, tuple(granted), existing is None)


def granted_scopes(token: Mapping[str, Any], requested: Sequence[str]) -> list[str]:
    """The scopes the token covers: its ``scope`` field (Google always sends it), else what we asked."""
    scope = token.get("scope")
    return str(scope).split() if scope else list(requested)
