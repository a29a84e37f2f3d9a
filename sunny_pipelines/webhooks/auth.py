"""Authenticity checks: Attendee HMAC signatures and Pub/Sub push OIDC tokens.

Nothing here logs or returns a token, secret or signature; failures carry a fixed reason code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt as pyjwt
import requests
from google.auth import exceptions as google_exceptions
from google.auth import jwt as google_jwt

# Google's ID tokens are RS256; anything else in the header is refused before verification.
_ALLOWED_ALGORITHMS = frozenset({"RS256"})
# Leeway for the iat/exp checks (Google's own libraries allow a few seconds too).
CLOCK_SKEW_SECONDS = 10
_MAX_AGE = re.compile(r"max-age=(\d+)")


class AuthFailure(Exception):
    """The request is not authentic. ``reason`` is a fixed code; ``status`` 401 or 403."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class CertsUnavailable(Exception):
    """Google's signing certificates could not be fetched (our problem: answer 503, Google retries)."""


# --- Attendee ---------------------------------------------------------------------------------


def attendee_canonical_json(payload: Any) -> bytes:
    """The bytes Attendee signs: sorted keys, no whitespace, UTF-8 (not ASCII-escaped)."""
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def attendee_signature(payload: Any, key: bytes) -> str:
    """base64(HMAC-SHA256(key, canonical JSON)): the `X-Webhook-Signature` value."""
    digest = hmac.new(key, attendee_canonical_json(payload), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_attendee_signature(payload: Any, signature: str | None, key: bytes | None) -> None:
    """Raise AuthFailure unless ``signature`` is the Attendee signature of ``payload``."""
    if key is None:
        raise AuthFailure(401, "attendee_secret_not_configured")
    if not signature:
        raise AuthFailure(401, "missing_signature")
    expected = attendee_signature(payload, key)
    # Constant-time on the ASCII form; a non-ASCII header can never match.
    if not hmac.compare_digest(expected.encode("ascii"), signature.strip().encode("utf-8", "replace")):
        raise AuthFailure(401, "bad_signature")


# --- Pub/Sub push ------------------------------------------------------------------------------


class CertCache:
    """Google's `{kid: PEM}` signing certificates, fetched with a short TTL.

    google-auth's `verify_token` fetches the certs on every call; this keeps one copy per app,
    refreshes on expiry or on an unknown key id (Google rotates keys), and rate-limits those
    refreshes so that tokens with made-up key ids cannot make us hammer the certs endpoint.
    """

    def __init__(
        self,
        url: str,
        ttl_seconds: float = 300.0,
        min_refresh_seconds: float = 30.0,
        fetch: Callable[[str], tuple[Mapping[str, str], float | None]] | None = None,
    ) -> None:
        self.url = url
        self.ttl_seconds = ttl_seconds
        self.min_refresh_seconds = min_refresh_seconds
        self._fetch = fetch or _fetch_certs
        self._lock = threading.Lock()
        self._certs: Mapping[str, str] = {}
        self._expires = 0.0
        self._fetched = float("-inf")
        self._failed_until = float("-inf")

    def get(self, kid: str | None) -> Mapping[str, str]:
        with self._lock:
            now = time.monotonic()
            stale = now >= self._expires
            unknown_kid = kid is not None and kid not in self._certs
            may_refresh = now - self._fetched >= self.min_refresh_seconds
            if stale or (unknown_kid and may_refresh):
                if now < self._failed_until and not self._certs:
                    # A fetch just failed: do not queue every request behind another timeout.
                    raise CertsUnavailable("signing certificates unavailable (recent fetch failed)")
                try:
                    certs, max_age = self._fetch(self.url)
                except CertsUnavailable:
                    self._failed_until = now + 2.0
                    if not self._certs:
                        raise
                    # Keep serving the previous certs for a while: Google's keys overlap in time.
                    self._expires = now + self.min_refresh_seconds
                else:
                    self._certs = dict(certs)
                    ttl = self.ttl_seconds if max_age is None else max(min(max_age, self.ttl_seconds), 5.0)
                    self._expires = now + ttl
                    self._fetched = now
            return self._certs


def _fetch_certs(url: str) -> tuple[Mapping[str, str], float | None]:
    try:
        response = requests.get(url, timeout=5)
        response.raise_for_status()
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise CertsUnavailable(f"cannot fetch signing certificates: {type(exc).__name__}") from None
    if not isinstance(body, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in body.items()
    ):
        raise CertsUnavailable("signing certificates are not a {kid: PEM} mapping")
    match = _MAX_AGE.search(response.headers.get("Cache-Control", ""))
    return body, float(match.group(1)) if match else None


def verify_pubsub_jwt(
    token: str,
    *,
    certs: CertCache,
    audience: str,
    service_account: str,
    issuers: tuple[str, ...] = (),
) -> Mapping[str, Any]:
    """Verify a Pub/Sub push OIDC token (signature, expiry, audience, issuer, sender).

    Raises AuthFailure (401 bad token, 403 authentic token from the wrong account) or
    CertsUnavailable. Returns the claims.
    """
    try:
        header = pyjwt.get_unverified_header(token)
    except pyjwt.PyJWTError:
        raise AuthFailure(401, "bad_jwt") from None
    if header.get("alg") not in _ALLOWED_ALGORITHMS:
        raise AuthFailure(401, "bad_jwt")
    kid = header.get("kid")
    key_set = certs.get(kid if isinstance(kid, str) else None)
    try:
        # Audience is checked separately below to report it as its own reason.
        claims = google_jwt.decode(
            token, certs=key_set, verify=True, audience=None, clock_skew_in_seconds=CLOCK_SKEW_SECONDS
        )
    except google_exceptions.GoogleAuthError as exc:
        message = str(exc).lower()
        reason = "jwt_expired" if "expired" in message else "bad_jwt"
        raise AuthFailure(401, reason) from None
    except (ValueError, TypeError, KeyError):
        raise AuthFailure(401, "bad_jwt") from None

    if claims.get("aud") != audience:
        raise AuthFailure(401, "jwt_wrong_audience")
    if issuers and claims.get("iss") not in issuers:
        raise AuthFailure(401, "jwt_wrong_issuer")
    # An authentic Google token for someone else: authenticated, but not allowed.
    if claims.get("email") != service_account:
        raise AuthFailure(403, "wrong_service_account")
    if claims.get("email_verified") not in (True, "true"):
        raise AuthFailure(403, "email_not_verified")
    return claims


def shared_secret_matches(presented: str | None, secret: str) -> bool:
    if not presented or not secret:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "replace"), secret.encode("utf-8"))
