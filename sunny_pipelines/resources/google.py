"""Google: per-user credentials from the stored, encrypted grant, and API clients.

With ``sandbox_url`` set (SUNNY_SANDBOX_URL), OAuth and every API point at the local sandbox;
``disabled`` or empty means Google itself.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib import resources as importlib_resources
from typing import Any

import dagster as dg
import google.auth.transport.requests
import google_auth_httplib2
import httplib2
import requests
from google.auth.exceptions import RefreshError
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError
from sqlalchemy import select, update

from sunny_pipelines.db.models import GoogleConnection
from sunny_pipelines.resources.cipher import TokenCipher
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.vocabulary import GrantStatus

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
GOOGLE_TOKENINFO_URI = "https://oauth2.googleapis.com/tokeninfo"
GOOGLE_REVOKE_URI = "https://oauth2.googleapis.com/revoke"
# Refresh a little before expiry so a token never dies mid-sync.
EXPIRY_MARGIN = timedelta(minutes=5)
# Google calls in flight at once in one run process, whatever the number of users and threads.
DEFAULT_GOOGLE_CONCURRENCY = int(os.environ.get("SUNNY_GOOGLE_CONCURRENCY", "8"))


class GoogleGrantError(Exception):
    """The user's Google grant cannot be used; the connection was marked ``needs_reauth``."""

    def __init__(self, user_id: str, reason: str) -> None:
        super().__init__(f"Google grant of user {user_id} needs re-consent: {reason}")
        self.user_id = user_id
        self.reason = reason


@functools.cache
def _discovery_document(api: str, version: str) -> dict[str, Any]:
    # The client library's bundled discovery documents, parsed once per process.
    ref = importlib_resources.files("googleapiclient.discovery_cache") / "documents" / f"{api}.{version}.json"
    return json.loads(ref.read_text())


class CallLimit:
    """At most ``size`` Google calls in flight at once; remembers the most it has seen."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"SUNNY_GOOGLE_CONCURRENCY must be at least 1, not {size}")
        self.size = size
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._slots:
            with self._lock:
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
            try:
                yield
            finally:
                with self._lock:
                    self.in_flight -= 1


@functools.cache
def call_limit(size: int) -> CallLimit:
    """The process-wide limit of this size: every session of a run shares it."""
    return CallLimit(size)


class _CountingHttp(httplib2.Http):
    """httplib2 with a request counter (the API calls shown in run metadata), each request
    holding a slot of the process's Google call limit."""

    def __init__(self, timeout: float, token_uri: str, limit: CallLimit) -> None:
        super().__init__(timeout=timeout)
        self.api_calls = 0
        self._token_uri = token_uri
        self._limit = limit

    def request(self, uri, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        if not uri.startswith(self._token_uri):
            self.api_calls += 1
        with self._limit.slot():
            return super().request(uri, *args, **kwargs)


class _TimeoutRequest(google.auth.transport.requests.Request):
    def __init__(self, timeout: float) -> None:
        super().__init__(session=requests.Session())
        self._timeout = timeout

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):  # type: ignore[no-untyped-def, override]
        return super().__call__(url, method, body, headers, timeout=timeout or self._timeout, **kwargs)


def http_status(exc: HttpError) -> int:
    """The HTTP status of a Google API error."""
    return int(getattr(exc.resp, "status", 0) or 0)


def _naive_utc(value: datetime | None) -> datetime | None:
    # google-auth compares expiry as a naive UTC datetime.
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


class GoogleSession:
    """One user's authenticated access to Google for the duration of a sync (one thread).

    ``any_status`` also opens a grant that is not active (waiting for re-consent, disconnected):
    offboarding uses it to stop the user's channels at Google while the grant still allows."""

    def __init__(self, resource: GoogleResource, user_id: str, *, any_status: bool = False) -> None:
        self._resource = resource
        self.user_id = user_id
        with resource.database.begin() as conn:
            conn_row = conn.execute(
                select(GoogleConnection.__table__).where(GoogleConnection.user_id == user_id)
            ).first()
        if conn_row is None:
            raise GoogleGrantError(user_id, "no Google connection")
        if conn_row.status != GrantStatus.ACTIVE and not (any_status and conn_row.refresh_token):
            raise GoogleGrantError(user_id, f"connection is {conn_row.status}: {conn_row.last_error or ''}")
        cipher = resource.cipher
        self.credentials = Credentials(
            token=cipher.decrypt(conn_row.access_token),
            refresh_token=cipher.decrypt(conn_row.refresh_token),
            token_uri=resource.token_uri,
            client_id=resource.client_id,
            client_secret=resource.client_secret,
            scopes=list(conn_row.scopes or []) or None,
            expiry=_naive_utc(conn_row.expires_at),
        )
        self._persisted_token = self.credentials.token
        self._limit = call_limit(resource.max_concurrent_calls)
        self._http = _CountingHttp(resource.timeout_seconds, resource.token_uri, self._limit)
        self._authed_http = google_auth_httplib2.AuthorizedHttp(self.credentials, http=self._http)
        self._services: dict[str, Any] = {}

    @property
    def api_calls(self) -> int:
        return self._http.api_calls

    def ensure_fresh_token(self) -> None:
        """Refresh the access token if it is missing or expires soon, and persist it."""
        creds = self.credentials
        expiring = creds.expiry is not None and creds.expiry - EXPIRY_MARGIN <= datetime.now(UTC).replace(
            tzinfo=None
        )
        if creds.token and not expiring:
            return
        try:
            with self._limit.slot():  # the token endpoint is a Google call too
                creds.refresh(_TimeoutRequest(self._resource.timeout_seconds))
        except RefreshError as exc:
            self._handle_refresh_error(exc)
        self.persist_token()

    def _handle_refresh_error(self, exc: RefreshError) -> None:
        if getattr(exc, "retryable", False):
            raise exc
        reason = str(exc.args[0]) if exc.args else str(exc)
        self._resource.mark_needs_reauth(self.user_id, reason)
        raise GoogleGrantError(self.user_id, reason) from exc

    def persist_token(self) -> None:
        """Write a token that google-auth refreshed (proactively or after a 401) back, encrypted."""
        creds = self.credentials
        if creds.token == self._persisted_token or creds.token is None:
            return
        expires_at = creds.expiry.replace(tzinfo=UTC) if creds.expiry else None
        with self._resource.database.begin() as conn:
            conn.execute(
                update(GoogleConnection)
                .where(GoogleConnection.user_id == self.user_id)
                .values(
                    access_token=self._resource.cipher.encrypt(creds.token),
                    expires_at=expires_at,
                    last_refreshed_at=datetime.now(UTC),
                    last_error=None,
                    updated_at=datetime.now(UTC),
                )
            )
        self._persisted_token = creds.token

    def _service(self, api: str, version: str, endpoint_path: str) -> Any:
        # Built once per session: building a client from its discovery document was about 10% of
        # a calendar sync's time (fleet profile). A session belongs to one user's sync (one thread).
        service = self._services.get(api)
        if service is None:
            options = None
            if self._resource.sandbox_base:
                options = {"api_endpoint": self._resource.sandbox_base + endpoint_path}
            service = build_from_document(
                _discovery_document(api, version), http=self._authed_http, client_options=options
            )
            self._services[api] = service
        return service

    def calendar(self) -> Any:
        return self._service("calendar", "v3", "/calendar/v3/")

    def drive(self) -> Any:
        return self._service("drive", "v3", "/drive/v3/")

    def gmail(self) -> Any:
        # Gmail's method paths already start with gmail/v1/.
        return self._service("gmail", "v1", "")

    def pages(self, request_for: Callable[[str | None], Any]) -> Iterator[dict[str, Any]]:
        """Every page of a list call, in order: ``request_for(page_token)`` builds each page's
        request (None for the first); the last page is the one without `nextPageToken`."""
        page_token = None
        while True:
            page = self.execute(request_for(page_token))
            yield page
            page_token = page.get("nextPageToken")
            if not page_token:
                return

    def execute(self, request: Any) -> Any:
        """Run one API request with Google's retry policy (5xx, 429, rate-limit 403)."""
        try:
            return request.execute(num_retries=self._resource.num_retries)
        except RefreshError as exc:  # a 401 led to a refresh, and the grant is gone
            self._handle_refresh_error(exc)
            raise


class GoogleResource(dg.ConfigurableResource):
    """Google OAuth client settings plus the stores the grants live in."""

    database: DatabaseResource
    cipher: TokenCipher
    sandbox_url: str = ""
    # Public base URL of the webhook receiver, where Google delivers channel notifications;
    # empty means no push channels are opened (schedules alone keep data fresh).
    push_receiver_url: str = ""
    # The Pub/Sub topic Gmail publishes mailbox changes to (`projects/<p>/topics/<t>`); its push
    # subscription delivers to the receiver. Empty means no Gmail watch (schedules only).
    gmail_pubsub_topic: str = ""
    client_id: str = "sunny-local"
    client_secret: str = "sunny-local-secret"
    timeout_seconds: float = 20.0
    num_retries: int = 5
    # Google calls in flight at once per run process (shared by every user the run syncs).
    max_concurrent_calls: int = DEFAULT_GOOGLE_CONCURRENCY

    @property
    def sandbox_base(self) -> str:
        url = self.sandbox_url.strip().rstrip("/")
        return "" if url in ("", "disabled") else url

    @property
    def token_uri(self) -> str:
        return self.sandbox_base + "/token" if self.sandbox_base else GOOGLE_TOKEN_URI

    @property
    def tokeninfo_uri(self) -> str:
        return self.sandbox_base + "/tokeninfo" if self.sandbox_base else GOOGLE_TOKENINFO_URI

    @property
    def revoke_uri(self) -> str:
        return self.sandbox_base + "/revoke" if self.sandbox_base else GOOGLE_REVOKE_URI

    def oauth_request(self) -> google.auth.transport.requests.Request:
        """google-auth's transport for the OAuth endpoints, with this resource's timeout."""
        return _TimeoutRequest(self.timeout_seconds)

    def session(self, user_id: str) -> GoogleSession:
        """Credentials for ``user_id``, refreshed if needed; raises GoogleGrantError if unusable."""
        session = GoogleSession(self, user_id)
        session.ensure_fresh_token()
        return session

    def mark_needs_reauth(self, user_id: str, reason: str) -> bool:
        """An active grant Google refused now waits for re-consent, with the reason (never a
        token); a grant already in another state keeps it. Whether it changed."""
        now = datetime.now(UTC)
        with self.database.begin() as conn:
            return bool(
                conn.execute(
                    update(GoogleConnection)
                    .where(GoogleConnection.user_id == user_id, GoogleConnection.status == GrantStatus.ACTIVE)
                    .values(
                        status=GrantStatus.NEEDS_REAUTH,
                        last_error=reason[:2000],
                        needs_reauth_since=now,
                        updated_at=now,
                    )
                ).rowcount
            )


SessionFactory = Callable[[str], GoogleSession]
