"""Users and their Google grants: consent (authorization codes with PKCE), refresh tokens, access
tokens, revocation. Shared by every service plugin (each Google API authenticates its requests here).

The sandbox keeps one grant per user (Google keeps one per user and client): a new consent replaces
the user's refresh token, and with ``include_granted_scopes`` its scopes add to those of the grant
still in force (incremental authorization).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sunny_pipelines.sandbox.core.clock import Clock

ACCESS_TOKEN_TTL = 3600
DEFAULT_SCOPES = (
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/calendar",
    "https://www.googleapis.com/auth/drive",
    "https://www.googleapis.com/auth/gmail.modify",
)
DEFAULT_CLIENT_ID = "sandbox-client"
# Google's authorization codes are short-lived (minutes) and single use.
AUTHORIZATION_CODE_TTL = 600
# Scopes a consent may ask for: OpenID Connect's short names and Google API scopes.
OPENID_SCOPES = ("openid", "email", "profile")
GOOGLE_SCOPE_PREFIX = "https://www.googleapis.com/auth/"
CODE_CHALLENGE_METHODS = ("S256", "plain")
# RFC 7636: a code verifier is 43 to 128 characters of [A-Za-z0-9-._~].
_CODE_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
# Faults the accounts carry out at once (World.inject_fault hands them here).
ACCOUNT_FAULT_KINDS = ("revoke", "expire_access_token")


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
    grant_generation: int = 0  # how many grants the user has given (each has its own refresh token)
    last_access_token: str = ""


@dataclass
class AuthorizationCode:
    """What a consent granted, waiting to be exchanged once at the token endpoint."""

    code: str
    user_id: str
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    offline: bool
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float


def pkce_challenge(verifier: str, method: str = "S256") -> str:
    """The code challenge of ``verifier`` (RFC 7636): base64url(SHA-256) unpadded, or itself."""
    if method == "plain":
        return verifier
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def scope_is_known(scope: str) -> bool:
    if scope in OPENID_SCOPES:
        return True
    return scope.startswith(GOOGLE_SCOPE_PREFIX) and len(scope) > len(GOOGLE_SCOPE_PREFIX)


@dataclass
class AccessToken:
    token: str
    user_id: str
    expires_at: float
    client_id: str
    scopes: frozenset[str]


class Accounts:
    """Every user and grant. Thread-safe (one re-entrant lock)."""

    def __init__(self, seed: int, clock: Clock) -> None:
        self.lock = threading.RLock()
        self.seed = seed
        self.clock = clock
        self.users: dict[str, User] = {}  # by user id
        self._by_email: dict[str, User] = {}
        self._access_tokens: dict[str, AccessToken] = {}  # by token
        self._refresh_token_owner: dict[str, str] = {}  # refresh token -> user id
        self._newest_access_token: dict[str, AccessToken] = {}  # by user id
        # Injected token endpoint outages: [user email or None (any user), answers left, status].
        self._token_faults: list[list[Any]] = []
        self._codes: dict[str, AuthorizationCode] = {}  # authorization codes not yet exchanged
        # Every access and refresh token ever issued, expired and revoked ones too: what the
        # test suite's token-leak check looks for (`issued_tokens`).
        self._issued: list[str] = []

    def add_user(
        self,
        email: str,
        name: str | None = None,
        timezone: str = "UTC",
        user_id: str | None = None,
        scopes: tuple[str, ...] | list[str] | None = None,
    ) -> User:
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
            return user

    def _new_grant(self, user: User) -> None:
        # Refresh tokens are derived from the seed so an app keeps working across sandbox restarts.
        user.grant_generation += 1
        digest = hashlib.sha256(f"{self.seed}:{user.id}:{user.grant_generation}".encode()).hexdigest()
        user.refresh_token = f"1//sbx-{digest[:40]}"
        self._issued.append(user.refresh_token)
        user.status = "active"
        self._refresh_token_owner[user.refresh_token] = user.id
        self.issue_access_token(user)

    def issued_tokens(self) -> list[str]:
        """Every access and refresh token this sandbox has issued, in order."""
        with self.lock:
            return list(self._issued)

    def user_by_email(self, email: str) -> User | None:
        return self._by_email.get(email.strip().lower())

    def get_user(self, email_or_id: str) -> User:
        with self.lock:
            user = self.users.get(email_or_id) or self.user_by_email(email_or_id)
            if user is None:
                raise KeyError(email_or_id)
            return user

    def _current_token(self, user: User) -> AccessToken | None:
        at = self._newest_access_token.get(user.id)
        if at is None or at.token not in self._access_tokens or at.expires_at <= self.clock.now() + 300:
            return None
        return at

    def public_view(self, user: User) -> dict[str, Any]:
        """The user as `GET /sandbox/users` shows them, with a currently valid access token."""
        with self.lock:
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
                "expires_in": int(at.expires_at - self.clock.now()) if at else 0,
                "scopes": list(user.scopes),
            }

    def list_users(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self.public_view(u) for u in sorted(self.users.values(), key=lambda u: u.id)]

    def reconnect_user(self, email: str) -> dict[str, Any]:
        """The user consents again: a new grant (new refresh token) replaces a revoked one."""
        with self.lock:
            user = self.get_user(email)
            self.revoke_grant(user)
            self._new_grant(user)
            return self.public_view(user)

    def issue_access_token(self, user: User, client_id: str = DEFAULT_CLIENT_ID) -> AccessToken:
        with self.lock:
            token = "ya29.sbx-" + secrets.token_urlsafe(36)
            expires_at = self.clock.now() + ACCESS_TOKEN_TTL
            at = AccessToken(token, user.id, expires_at, client_id, frozenset(user.scopes))
            self._access_tokens[token] = at
            self._issued.append(token)
            self._newest_access_token[user.id] = at
            user.last_access_token = token
            return at

    def refresh_access_token(self, refresh_token: str, client_id: str | None = None) -> dict[str, Any]:
        """The token endpoint's refresh grant; raises OAuthError(invalid_grant) for unknown/revoked tokens."""
        with self.lock:
            user_id = self._refresh_token_owner.get(refresh_token)
            user = self.users.get(user_id) if user_id else None
            if user is None or user.status != "active" or user.refresh_token != refresh_token:
                raise OAuthError("invalid_grant", "Token has been expired or revoked.")
            self._take_token_fault(user)
            self._prune_expired_tokens()
            at = self.issue_access_token(user, client_id or DEFAULT_CLIENT_ID)
            return {
                "access_token": at.token,
                "expires_in": ACCESS_TOKEN_TTL,
                "scope": " ".join(user.scopes),
                "token_type": "Bearer",
            }

    # -- consent: the authorization endpoint and the authorization_code grant ---------------------------

    def authorize(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        scopes: Sequence[str],
        login_hint: str | None,
        offline: bool,
        include_granted_scopes: bool,
        code_challenge: str | None,
        code_challenge_method: str | None,
    ) -> AuthorizationCode:
        """Consent given at once by the user ``login_hint`` names; returns the authorization code.

        Raises OAuthError(access_denied) when no such user exists (nobody could consent), and
        OAuthError(invalid_scope / invalid_request) for scopes or a PKCE challenge Google refuses.
        """
        unknown = [scope for scope in scopes if not scope_is_known(scope)]
        if not scopes:
            raise OAuthError("invalid_request", "Missing required parameter: scope")
        if unknown:
            raise OAuthError("invalid_scope", f"Some requested scopes were invalid: {' '.join(unknown)}")
        if code_challenge is not None:
            code_challenge_method = code_challenge_method or "plain"  # Google's default, as RFC 7636's
            if code_challenge_method not in CODE_CHALLENGE_METHODS:
                raise OAuthError("invalid_request", f"Invalid code_challenge_method: {code_challenge_method}")
            if not _CODE_VERIFIER.match(code_challenge):
                raise OAuthError("invalid_request", "Invalid code_challenge")
        with self.lock:
            user = self.user_by_email(login_hint) if login_hint else None
            if user is None:
                raise OAuthError("access_denied", "No sandbox user matches login_hint")
            self._prune_expired_codes()
            requested = tuple(dict.fromkeys(scopes))
            granted = requested
            if include_granted_scopes and user.status == "active":
                # Incremental authorization: the new token covers every scope granted before too.
                granted = tuple(dict.fromkeys((*user.scopes, *requested)))
            code = AuthorizationCode(
                code="4/sbx-" + secrets.token_urlsafe(32),
                user_id=user.id,
                client_id=client_id,
                redirect_uri=redirect_uri,
                scopes=granted,
                offline=offline,
                code_challenge=code_challenge,
                code_challenge_method=code_challenge_method if code_challenge else None,
                expires_at=self.clock.now() + AUTHORIZATION_CODE_TTL,
            )
            self._codes[code.code] = code
            return code

    def exchange_code(
        self, code: str, client_id: str | None, redirect_uri: str | None, code_verifier: str | None
    ) -> dict[str, Any]:
        """The token endpoint's authorization_code grant. A code is used at most once: any attempt
        consumes it, so a verifier cannot be guessed and a replayed code is `invalid_grant`."""
        with self.lock:
            grant = self._codes.pop(code, None)
            if grant is None or grant.expires_at <= self.clock.now():
                raise OAuthError("invalid_grant", "Malformed auth code.")
            if client_id != grant.client_id:
                raise OAuthError("invalid_grant", "The authorization code was issued to another client.")
            if redirect_uri != grant.redirect_uri:
                raise OAuthError("redirect_uri_mismatch", "Bad Request")
            if grant.code_challenge is not None:
                if not code_verifier:
                    raise OAuthError("invalid_grant", "Missing code verifier.")
                expected = grant.code_challenge
                method = grant.code_challenge_method or "plain"
                if not _CODE_VERIFIER.match(code_verifier) or not secrets.compare_digest(
                    pkce_challenge(code_verifier, method), expected
                ):
                    raise OAuthError("invalid_grant", "Invalid code verifier.")
            user = self.users[grant.user_id]
            user.scopes = grant.scopes
            if grant.offline or user.status != "active":
                # A new grant: its refresh token replaces the user's previous one (access tokens
                # already issued live on until they expire, as at Google).
                self._new_grant(user)
            self._prune_expired_tokens()
            at = self.issue_access_token(user, grant.client_id)
            body: dict[str, Any] = {
                "access_token": at.token,
                "expires_in": ACCESS_TOKEN_TTL,
                "scope": " ".join(grant.scopes),
                "token_type": "Bearer",
            }
            if grant.offline:
                body["refresh_token"] = user.refresh_token
            return body

    def _prune_expired_codes(self) -> None:
        now = self.clock.now()
        for code in [c for c, grant in self._codes.items() if grant.expires_at <= now]:
            del self._codes[code]

    def _prune_expired_tokens(self) -> None:
        now = self.clock.now()
        for token in [t for t, at in self._access_tokens.items() if at.expires_at <= now]:
            del self._access_tokens[token]

    def revoke_grant(self, user: User) -> None:
        # The refresh token stays on the user (for list_users) but no longer maps to a grant.
        with self.lock:
            if user.refresh_token:
                self._refresh_token_owner.pop(user.refresh_token, None)
            user.status = "revoked"
            self.drop_access_tokens(user)

    def drop_access_tokens(self, user: User) -> None:
        with self.lock:
            for token in [t for t, at in self._access_tokens.items() if at.user_id == user.id]:
                del self._access_tokens[token]
            self._newest_access_token.pop(user.id, None)

    def revoke_token(self, token: str) -> bool:
        """Revoke an access or refresh token; as at Google, either one revokes the whole grant."""
        with self.lock:
            at = self._access_tokens.get(token)
            user_id = at.user_id if at else self._refresh_token_owner.get(token)
            user = self.users.get(user_id) if user_id else None
            if user is None or user.status != "active":
                return False
            self.revoke_grant(user)
            return True

    def authenticate(self, token: str | None) -> tuple[User, AccessToken] | None:
        if not token:
            return None
        with self.lock:
            at = self._access_tokens.get(token)
            if at is None or at.expires_at <= self.clock.now():
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
                "expires_in": max(int(at.expires_at - self.clock.now()), 0),
                "email": user.email,
                "email_verified": True,
                "access_type": "offline",
            }

    def apply_fault(self, kind: str, user: User) -> None:
        if kind == "revoke":
            self.revoke_grant(user)
        elif kind == "expire_access_token":
            self.drop_access_tokens(user)
        else:
            raise ValueError(f"not an account fault: {kind!r}")

    # -- token endpoint outages and withdrawn scopes (faults) ------------------------------------

    def queue_token_faults(self, email: str | None, count: int, status: int | None) -> None:
        """The next ``count`` refresh requests (of ``email``'s grant, or anyone's) answer a 5xx."""
        with self.lock:
            self._token_faults.append([email, max(int(count), 0), int(status or 503)])

    def clear_token_faults(self) -> None:
        with self.lock:
            self._token_faults.clear()

    def _take_token_fault(self, user: User) -> None:
        for fault in self._token_faults:
            email, left, status = fault
            if left > 0 and email in (None, user.email):
                fault[1] -= 1
                self._token_faults = [f for f in self._token_faults if f[1] > 0]
                raise OAuthError("server_error", "The service is currently unavailable.", status=status)

    def remove_scope(self, user: User, scope: str) -> None:
        """The user withdraws one scope from their grant (Google's account page allows it): it is
        gone from the grant's access tokens at once, and from the tokens refreshes give."""
        with self.lock:
            if scope not in user.scopes:
                raise ValueError(f"{user.email} has not granted {scope}")
            user.scopes = tuple(s for s in user.scopes if s != scope)
            for token, at in list(self._access_tokens.items()):
                if at.user_id == user.id:
                    self._access_tokens[token] = AccessToken(
                        at.token, at.user_id, at.expires_at, at.client_id, at.scopes - {scope}
                    )
            newest = self._newest_access_token.get(user.id)
            if newest is not None and newest.token in self._access_tokens:
                self._newest_access_token[user.id] = self._access_tokens[newest.token]
