"""Receiver settings, read from the environment with safe local defaults."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from sunny_pipelines.db.engine import database_url_from_env, normalize_url

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
# Issuers of Google-signed OIDC tokens (what Pub/Sub authenticated push sends).
GOOGLE_ISSUERS: tuple[str, ...] = ("accounts.google.com", "https://accounts.google.com")
DEFAULT_MAX_BODY_BYTES = 64 * 1024


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "database_url", normalize_url(self.database_url))
        if self.max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be positive")
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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookSettings:
        env = os.environ if environ is None else environ
        max_body = env.get("SUNNY_WEBHOOK_MAX_BODY_BYTES", "")
        return cls(
            database_url=env.get("SUNNY_DATABASE_URL") or database_url_from_env(),
            attendee_webhook_secret=env.get("SUNNY_ATTENDEE_WEBHOOK_SECRET", ""),
            pubsub_audience=env.get("SUNNY_PUBSUB_AUDIENCE", ""),
            pubsub_service_account=env.get("SUNNY_PUBSUB_SERVICE_ACCOUNT", ""),
            pubsub_certs_url=env.get("SUNNY_PUBSUB_CERTS_URL") or _default_certs_url(env),
            pubsub_shared_secret=env.get("SUNNY_PUBSUB_SHARED_SECRET", ""),
            max_body_bytes=int(max_body) if max_body else DEFAULT_MAX_BODY_BYTES,
        )
