"""Receiver settings, read from the environment with safe local defaults."""

from __future__ import annotations

import base64
import binascii
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import make_url

from sunny_pipelines.db.engine import database_url_from_env, normalize_url

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
# Issuers of Google-signed OIDC tokens (what Pub/Sub authenticated push sends).
GOOGLE_ISSUERS: tuple[str, ...] = ("accounts.google.com", "https://accounts.google.com")
DEFAULT_MAX_BODY_BYTES = 64 * 1024
# Request line plus all headers. Google channel headers and a Pub/Sub OIDC JWT fit in a few KB.
DEFAULT_MAX_HEADER_BYTES = 16 * 1024

# (field, environment variable) of the receiver's time bounds, in seconds (defaults: the fields).
TIME_BOUNDS: tuple[tuple[str, str], ...] = (
    # Database: a stall (a lock held, a saturated pool, an unreachable server) is answered 503
    # `database_unavailable` within a few seconds; Google, Pub/Sub and Attendee retry.
    ("db_connect_timeout", "SUNNY_WEBHOOK_DB_CONNECT_TIMEOUT"),
    ("db_lock_timeout", "SUNNY_WEBHOOK_DB_LOCK_TIMEOUT"),
    ("db_statement_timeout", "SUNNY_WEBHOOK_DB_STATEMENT_TIMEOUT"),
    # Longest wait for a worker thread, and then for a pooled connection.
    ("db_pool_timeout", "SUNNY_WEBHOOK_DB_POOL_TIMEOUT"),
    # /healthz's own database check (own connection, own threads).
    ("health_timeout", "SUNNY_WEBHOOK_HEALTH_TIMEOUT"),
    # Slow clients: from connection (or first byte of a request) to the end of its headers,
    # and from the end of the headers to the end of the body; then 408 and the connection closes.
    ("header_timeout", "SUNNY_WEBHOOK_HEADER_TIMEOUT"),
    ("body_timeout", "SUNNY_WEBHOOK_BODY_TIMEOUT"),
)


def _default_certs_url(env: Mapping[str, str]) -> str:
    sandbox = env.get("SUNNY_SANDBOX_URL", "").rstrip("/")
    return f"{sandbox}/oauth2/v1/certs" if sandbox else GOOGLE_CERTS_URL


@dataclass(frozen=True)
class WebhookSettings:
    """Everything the receiver needs. Empty secrets mean "reject what needs them" (safe default).

    Secret-bearing fields are excluded from ``repr`` so that logging the settings leaks nothing.
    """

    # The URL may carry a password, hence repr=False.
    database_url: str = field(default_factory=database_url_from_env, repr=False)
    # Base64 of the Attendee webhook signing key.
    attendee_webhook_secret: str = field(default="", repr=False)
    # OIDC push authentication: both must be set for a Bearer JWT to be accepted.
    pubsub_audience: str = ""
    pubsub_service_account: str = ""
    pubsub_certs_url: str = GOOGLE_CERTS_URL
    # Fallback for push subscriptions without OIDC: `?token=<secret>` on the push endpoint URL.
    pubsub_shared_secret: str = field(default="", repr=False)
    # Empty tuple disables the issuer check (e.g. for an emulator that signs with another iss).
    pubsub_issuers: tuple[str, ...] = GOOGLE_ISSUERS
    certs_ttl_seconds: float = 300.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    db_connect_timeout: float = 3.0
    db_lock_timeout: float = 2.0
    db_statement_timeout: float = 5.0
    db_pool_timeout: float = 2.0
    health_timeout: float = 3.0
    header_timeout: float = 10.0
    body_timeout: float = 10.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "database_url", normalize_url(self.database_url))
        if self.max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be positive")
        if self.max_header_bytes <= 0:
            raise ValueError("max_header_bytes must be positive")
        for name, _variable in TIME_BOUNDS:
            if not 0 < getattr(self, name) < 3600:
                raise ValueError(f"{name} must be between 0 and 3600 seconds")
        # Fail at startup, not on the first webhook, when the secret is malformed.
        self.attendee_key()

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.pubsub_audience and self.pubsub_service_account)

    def attendee_key(self) -> bytes | None:
        """The decoded Attendee signing key, or None when not configured."""
        if not self.attendee_webhook_secret:
            return None
        try:
            return base64.b64decode(self.attendee_webhook_secret, validate=True)
        except (binascii.Error, ValueError):
            # Never echo the secret itself.
            raise ValueError("SUNNY_ATTENDEE_WEBHOOK_SECRET is not valid base64") from None

    def engine_options(self, *, pool_size: int = 10, max_overflow: int = 20) -> dict[str, Any]:
        """`create_engine` options of the receiver's own engine: bounded connect, lock and
        statement times and a short pool wait (PostgreSQL; SQLite keeps its busy timeout)."""
        if make_url(self.database_url).get_backend_name() != "postgresql":
            return {"pool_timeout": self.db_pool_timeout}
        lock_ms = max(1, round(self.db_lock_timeout * 1000))
        statement_ms = max(1, round(self.db_statement_timeout * 1000))
        return {
            "pool_size": pool_size,
            "max_overflow": max_overflow,
            "pool_timeout": self.db_pool_timeout,
            "pool_pre_ping": True,
            "connect_args": {
                # libpq takes whole seconds (and treats 1 as 2).
                "connect_timeout": max(2, math.ceil(self.db_connect_timeout)),
                "options": f"-c lock_timeout={lock_ms} -c statement_timeout={statement_ms}",
                "application_name": "sunny_webhooks",
            },
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookSettings:
        env = os.environ if environ is None else environ
        max_body = env.get("SUNNY_WEBHOOK_MAX_BODY_BYTES", "")
        max_header = env.get("SUNNY_WEBHOOK_MAX_HEADER_BYTES", "")
        bounds = {name: float(env[variable]) for name, variable in TIME_BOUNDS if env.get(variable)}
        return cls(
            database_url=env.get("SUNNY_DATABASE_URL") or database_url_from_env(),
            attendee_webhook_secret=env.get("SUNNY_ATTENDEE_WEBHOOK_SECRET", ""),
            pubsub_audience=env.get("SUNNY_PUBSUB_AUDIENCE", ""),
            pubsub_service_account=env.get("SUNNY_PUBSUB_SERVICE_ACCOUNT", ""),
            pubsub_certs_url=env.get("SUNNY_PUBSUB_CERTS_URL") or _default_certs_url(env),
            pubsub_shared_secret=env.get("SUNNY_PUBSUB_SHARED_SECRET", ""),
            max_body_bytes=int(max_body) if max_body else DEFAULT_MAX_BODY_BYTES,
            max_header_bytes=int(max_header) if max_header else DEFAULT_MAX_HEADER_BYTES,
            **bounds,
        )
