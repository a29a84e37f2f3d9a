"""The frontend API's settings, read from the environment with safe local defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from sunny_pipelines.db.engine import database_url_from_env, normalize_url
from sunny_pipelines.vocabulary import REQUIRED_SCOPES

# Where OAuth and the Google APIs are, unless SUNNY_SANDBOX_URL points them at the sandbox
# (the same convention as `resources/google.py`: `disabled` or empty means Google itself).
GOOGLE_AUTHORIZATION_URL = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
GOOGLE_USERINFO_URL = "https://openidconnect.googleapis.com/v1/userinfo"
GOOGLE_API_BASE = "https://www.googleapis.com"
DEFAULT_SANDBOX_URL = "http://127.0.0.1:8765"

DEFAULT_STATE_TTL_SECONDS = 600


@dataclass(frozen=True)
class FrontendSettings:
    """Everything the frontend API needs. Secret-bearing fields stay out of ``repr``."""

    database_url: str = field(default_factory=database_url_from_env, repr=False)
    # Fernet key of the tokens at rest; empty means the local development key file.
    token_key: str = field(default="", repr=False)
    # The frontend's service key (`Authorization: Bearer` or `X-Sunny-Service-Key`); empty means
    # every frontend endpoint answers 401 (the OAuth browser endpoints do not use it).
    frontend_api_key: str = field(default="", repr=False)
    google_client_id: str = "sunny-local"
    google_client_secret: str = field(default="sunny-local-secret", repr=False)
    # The sandbox's base URL; empty or `disabled` means Google itself.
    sandbox_url: str = DEFAULT_SANDBOX_URL
    # The callback address registered with Google; empty means this service's own
    # `/oauth/google/callback` as the request reached it (fine locally, set it in production).
    redirect_uri: str = ""
    # Where the browser goes after a connect (`?google=connected&user_id=...`); empty means the
    # callback answers JSON itself.
    frontend_url: str = ""
    state_ttl_seconds: int = DEFAULT_STATE_TTL_SECONDS
    scopes: tuple[str, ...] = tuple(REQUIRED_SCOPES)  # what the syncs need (vocabulary.SERVICE_SCOPES)
    google_timeout_seconds: float = 20.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "database_url", normalize_url(self.database_url))
        if not 0 < self.state_ttl_seconds <= 3600:
            raise ValueError("state_ttl_seconds must be between 1 and 3600")

    @property
    def sandbox_base(self) -> str:
        url = self.sandbox_url.strip().rstrip("/")
        return "" if url in ("", "disabled") else url

    @property
    def authorization_url(self) -> str:
        return self.sandbox_base + "/o/oauth2/v2/auth" if self.sandbox_base else GOOGLE_AUTHORIZATION_URL

    @property
    def token_url(self) -> str:
        return self.sandbox_base + "/token" if self.sandbox_base else GOOGLE_TOKEN_URL

    @property
    def userinfo_url(self) -> str:
        return self.sandbox_base + "/oauth2/v3/userinfo" if self.sandbox_base else GOOGLE_USERINFO_URL

    @property
    def calendar_timezone_url(self) -> str:
        return (self.sandbox_base or GOOGLE_API_BASE) + "/calendar/v3/users/me/settings/timezone"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FrontendSettings:
        env = os.environ if environ is None else environ
        ttl = env.get("SUNNY_OAUTH_STATE_TTL_SECONDS", "")
        return cls(
            database_url=env.get("SUNNY_DATABASE_URL") or database_url_from_env(),
            token_key=env.get("SUNNY_TOKEN_KEY", ""),
            frontend_api_key=env.get("SUNNY_FRONTEND_API_KEY", ""),
            google_client_id=env.get("SUNNY_GOOGLE_CLIENT_ID") or "sunny-local",
            google_client_secret=env.get("SUNNY_GOOGLE_CLIENT_SECRET") or "sunny-local-secret",
            sandbox_url=env.get("SUNNY_SANDBOX_URL", DEFAULT_SANDBOX_URL),
            redirect_uri=env.get("SUNNY_OAUTH_REDIRECT_URI", ""),
            frontend_url=env.get("SUNNY_FRONTEND_URL", ""),
            state_ttl_seconds=int(ttl) if ttl else DEFAULT_STATE_TTL_SECONDS,
        )
