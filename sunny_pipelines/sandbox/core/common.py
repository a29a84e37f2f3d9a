"""Helpers shared by the sandbox's emulated APIs: Google-style errors, time formats, ids, tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import random
import secrets
from datetime import UTC, datetime, tzinfo
from email.utils import formatdate
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

BASE32HEX = "0123456789abcdefghijklmnopqrstuv"

# Google's canonical status names for the error codes the sandbox emits.
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    410: "GONE",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}

AUTH_ERROR_MESSAGE = "Request had invalid authentication credentials."


class ApiError(Exception):
    """An error answered in Google's JSON error format (`{"error": {"code", "message", "errors", ...}}`)."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        domain: str = "global",
        headers: dict[str, str] | None = None,
        **extra: str,
    ) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.domain = domain
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"domain": self.domain, "reason": self.reason, "message": self.message}
        detail.update(self.extra)
        error: dict[str, Any] = {"code": self.code, "message": self.message, "errors": [detail]}
        if self.code in _STATUS_NAMES:
            error["status"] = _STATUS_NAMES[self.code]
        return {"error": error}


def not_found(message: str = "Not Found") -> ApiError:
    return ApiError(404, "notFound", message)


def bad_request(message: str, reason: str = "invalid", **extra: str) -> ApiError:
    return ApiError(400, reason, message, **extra)


def auth_error() -> ApiError:
    return ApiError(
        401,
        "authError",
        AUTH_ERROR_MESSAGE,
        headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'},
        location="Authorization",
        locationType="header",
    )


def rate_limit_error(code: int = 429) -> ApiError:
    return ApiError(code, "rateLimitExceeded", "Rate Limit Exceeded", domain="usageLimits")


def backend_error(code: int = 503) -> ApiError:
    return ApiError(code, "backendError", "Backend Error")


# ---------------------------------------------------------------- time


def utc_from_ts(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def rfc3339_millis(ts: float) -> str:
    """`2026-11-28T10:00:00.123Z`, the format of Google's `created` / `updated` fields."""
    dt = utc_from_ts(ts)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def rfc1123(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def format_datetime(dt: datetime) -> str:
    """RFC 3339 with offset, `Z` for UTC, as Google prints `start.dateTime`."""
    text = dt.isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; a missing offset is an error (Google requires one)."""
    dt = datetime.fromisoformat(text.strip().replace("z", "Z"))
    if dt.tzinfo is None:
        raise ValueError(f"timestamp without offset: {text!r}")
    return dt


def get_zone(name: str | None) -> tzinfo:
    # Unknown names fall back to UTC rather than failing a request on a typo'd zone.
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


# ---------------------------------------------------------------- ids


def _random_text(alphabet: str, length: int, rng: random.Random | None) -> str:
    # bytes.translate maps random bytes onto the alphabet in one C call (ids are minted by the thousand).
    table = _TABLES.get(alphabet)
    if table is None:
        table = _TABLES[alphabet] = bytes(ord(alphabet[i % len(alphabet)]) for i in range(256))
    raw = rng.randbytes(length) if rng is not None else secrets.token_bytes(length)
    return raw.translate(table).decode()


_TABLES: dict[str, bytes] = {}


def base32hex_id(rng: random.Random | None = None, length: int = 26) -> str:
    """An id in the alphabet Google uses for event ids (lowercase base32hex)."""
    return _random_text(BASE32HEX, length, rng)


def stable_id(*parts: str, length: int = 26) -> str:
    """Deterministic base32hex id derived from `parts` (used for resource ids that must be stable)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return "".join(BASE32HEX[b % 32] for b in digest[:length])


def is_valid_event_id(event_id: str) -> bool:
    return 5 <= len(event_id) <= 1024 and all(c in BASE32HEX for c in event_id)


def meet_code(rng: random.Random | None = None) -> str:
    """A Google Meet code, `abc-defg-hij`."""
    text = _random_text("abcdefghijklmnopqrstuvwxyz", 10, rng)
    return f"{text[:3]}-{text[3:7]}-{text[7:]}"


def etag_for(seq: int, ts: float) -> str:
    """Google etags are quoted decimal strings; derive one that changes with every modification."""
    return f'"{int(ts * 1000) * 1000 + seq % 1000}"'


# ---------------------------------------------------------------- opaque tokens


class TokenCodec:
    """Signs small JSON payloads into opaque tokens (page tokens, sync tokens).

    The key is random per process, so tokens from an earlier sandbox process (whose data may differ)
    are rejected, as Google rejects tokens it no longer knows.
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def encode(self, payload: dict[str, Any]) -> str:
        raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        mac = hmac.new(self._key, raw, hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(mac + raw).decode().rstrip("=")

    def decode(self, token: str) -> dict[str, Any] | None:
        try:
            blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            return None
        mac, raw = blob[:12], blob[12:]
        if not hmac.compare_digest(mac, hmac.new(self._key, raw, hashlib.sha256).digest()[:12]):
            return None
        try:
            payload = json.loads(raw)
        except ValueError:
            return None
        return payload if isinstance(payload, dict) else None


# ---------------------------------------------------------------- outgoing HTTP


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST and return the status. Header names go out exactly as given (urllib would re-case them).

    Raises OSError / http.client.HTTPException when the endpoint cannot be reached.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"unsupported URL {url!r}")
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(parts.hostname, parts.port, timeout=timeout)
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", path, body=body, headers={**headers, "Content-Length": str(len(body))})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()
