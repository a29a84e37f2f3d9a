"""The frontend API: connecting a Google account (browser endpoints, protected by `state` and
PKCE) and, for the frontend's backend, "sync now" and sync status (service key).

A FastAPI app apart from the webhook receiver; it imports no Dagster and no domain. Errors are
answered `{"detail": {"error": <code>, "message": <text>}}`:

  400  missing_state, unknown_state (forged), state_already_used (replayed), state_expired,
       google_error (the consent screen answered error=...), missing_code,
       token_exchange_failed (Google refused the code), no_refresh_token, missing_scopes,
       google_refused, email_not_verified
  401  unauthorized (frontend endpoints: missing or wrong service key)
  404  unknown_user    409  grant_not_usable (sync now for a user whose grant needs re-consent)
  502  google_unavailable    503  database_unavailable
"""

import hmac
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from sunny_pipelines.db.engine import get_engine
from sunny_pipelines.db.secrets import TokenCrypto
from sunny_pipelines.frontend_api import oauth
from sunny_pipelines.frontend_api import sync as sync_now
from sunny_pipelines.frontend_api.oauth import ConnectError
from sunny_pipelines.frontend_api.settings import FrontendSettings

log = logging.getLogger(__name__)

SERVICE_KEY_HEADER = "X-Sunny-Service-Key"

# The services "sync now" accepts (those with a Google source), as an enum for the OpenAPI document.
SyncableService = StrEnum(  # type: ignore[misc]
    "SyncableService", {service.name: service.value for service in sync_now.SYNC_SOURCES}
)


# -- response models ------------------------------------------------------------------------------------


class Problem(BaseModel):
    error: str = Field(description="a fixed code, see the API description")
    message: str


class ErrorResponse(BaseModel):
    detail: Problem


class Health(BaseModel):
    status: str
    database: str


class Connected(BaseModel):
    status: str = "connected"
    user_id: str
    email: str = Field(description="the user's Sunny address")
    google_email: str
    scopes: list[str]
    new_user: bool


class SyncNowRequest(BaseModel):
    services: list[SyncableService] | None = Field(  # type: ignore[valid-type]
        default=None, description="services to sync; empty or absent means every Google service"
    )


class ServiceSyncRequested(BaseModel):
    service: str
    inbox_id: int = Field(description="the webhook_inbox row the inbox sensor turns into a run")
    queued: bool = Field(description="false: an earlier request still waits for its run and answers this one")


class SyncNowResponse(BaseModel):
    user_id: str
    requests: list[ServiceSyncRequested]


class GrantStatus(BaseModel):
    status: str = Field(description="active | needs_reauth | revoked")
    google_email: str | None
    scopes: list[str]
    access_token_expires_at: datetime | None
    last_validated_at: datetime | None
    last_error: str | None


class ServiceStatus(BaseModel):
    service: str
    last_synced_at: datetime | None
    interval_seconds: int | None
    last_change_count: int | None
    last_error: str | None
    consecutive_failures: int
    pending_notifications: int = Field(description="inbox rows (pushes, sync-now requests) waiting for a run")


class SyncStatusResponse(BaseModel):
    user_id: str
    user_status: str
    grant: GrantStatus | None = Field(description="null: the user never connected Google")
    services: list[ServiceStatus]


def _error(status: int, code: str, message: str) -> HTTPException:
    return HTTPException(status, detail={"error": code, "message": message})


ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": ErrorResponse}, 404: {"model": ErrorResponse}}


# -- the app --------------------------------------------------------------------------------------------


def create_app(settings: FrontendSettings | None = None) -> FastAPI:
    settings = settings or FrontendSettings.from_env()
    engine = get_engine(settings.database_url, key="frontend_api")
    crypto = TokenCrypto(settings.token_key)
    if not settings.frontend_api_key:
        log.warning("SUNNY_FRONTEND_API_KEY is not set: every frontend endpoint answers 401")

    app = FastAPI(
        title="Sunny frontend API",
        version="1.0.0",
        description=__doc__,
    )
    app.state.settings = settings

    @app.exception_handler(SQLAlchemyError)
    async def database_unavailable(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        # The class name only: DBAPI messages can carry parameters (encrypted tokens).
        log.error("frontend API database error on %s: %s", request.url.path, type(exc).__name__)
        return JSONResponse(
            {"detail": {"error": "database_unavailable", "message": type(exc).__name__}}, status_code=503
        )

    bearer = HTTPBearer(auto_error=False, description="the frontend service key (SUNNY_FRONTEND_API_KEY)")
    key_header = APIKeyHeader(
        name=SERVICE_KEY_HEADER, auto_error=False, description="the frontend service key, as a header"
    )

    def service_key(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
        header_key: Annotated[str | None, Security(key_header)],
    ) -> None:
        presented = header_key or (credentials.credentials if credentials else "")
        expected = settings.frontend_api_key
        # Constant time; an unset key matches nothing.
        if not expected or not presented or not hmac.compare_digest(presented.encode(), expected.encode()):
            raise HTTPException(
                401,
                detail={"error": "unauthorized", "message": "missing or wrong frontend service key"},
                headers={"WWW-Authenticate": "Bearer"},
            )

    authenticated = [Depends(service_key)]

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Any:
        with engine.connect() as conn:
            conn.execute(select(1))
        return {"status": "ok", "database": "ok"}

    # -- connecting Google (browser endpoints) --------------------------------------------------------

    @app.get(
        "/oauth/google/start",
        tags=["oauth"],
        status_code=302,
        response_class=RedirectResponse,
        responses={302: {"description": "to Google's consent screen"}},
        summary="Start connecting a Google account",
    )
    def google_start(
        request: Request,
        login_hint: Annotated[
            str | None, Query(max_length=320, description="the Google address to connect (pre-selects it)")
        ] = None,
    ) -> RedirectResponse:
        """Opens a connect flow (random `state` stored with its PKCE verifier) and redirects the
        browser to Google's consent screen: offline access, `prompt=consent`, incremental scopes."""
        redirect_uri = settings.redirect_uri or str(request.url_for("google_callback"))
        with engine.begin() as conn:
            url = oauth.open_flow(conn, crypto, settings, redirect_uri, login_hint, datetime.now(UTC))
        return RedirectResponse(url, status_code=302)

    @app.get(
        "/oauth/google/callback",
        name="google_callback",
        tags=["oauth"],
        response_model=Connected,
        responses={
            303: {"description": "to SUNNY_FRONTEND_URL?google=connected&user_id=... when it is set"},
            400: {"model": ErrorResponse},
            502: {"model": ErrorResponse},
        },
        summary="Google's redirect back after consent",
    )
    def google_callback(
        state: str | None = None,
        code: str | None = None,
        error: str | None = None,
    ) -> Any:
        """Checks `state` (unknown, expired or used: refused), exchanges the code with the PKCE
        verifier, reads the account, stores the encrypted grant and activates the user."""
        try:
            with engine.begin() as conn:
                flow = oauth.take_state(conn, crypto, state, settings.state_ttl_seconds, datetime.now(UTC))
        except ConnectError as exc:
            log.warning("google connect refused: %s", exc.code)
            raise _error(exc.status, exc.code, exc.message) from None
        try:
            connected = _complete(settings, flow, code, error)
            with engine.begin() as conn:
                stored = oauth.connect_user(
                    conn, crypto, connected.token, connected.account, connected.timezone, connected.scopes
                )
                oauth.record_outcome(conn, flow.state_hash, user_id=stored.user_id)
        except ConnectError as exc:
            with engine.begin() as conn:
                oauth.record_outcome(conn, flow.state_hash, error=f"{exc.code}: {exc.message}")
            log.warning("google connect refused: %s: %s", exc.code, exc.message)
            raise _error(exc.status, exc.code, exc.message) from None
        log.info("google connect: user %s connected (new user: %s)", stored.user_id, stored.new_user)
        if settings.frontend_url:
            query = urlencode({"google": "connected", "user_id": stored.user_id})
            separator = "&" if "?" in settings.frontend_url else "?"
            return RedirectResponse(settings.frontend_url + separator + query, status_code=303)
        return Connected(
            user_id=stored.user_id,
            email=stored.email,
            google_email=stored.google_email,
            scopes=list(stored.scopes),
            new_user=stored.new_user,
        )

    # -- for the frontend (service key) ---------------------------------------------------------------

    @app.post(
        "/users/{user_id}/sync",
        tags=["sync"],
        status_code=202,
        response_model=SyncNowResponse,
        dependencies=authenticated,
        responses={**ERRORS, 409: {"model": ErrorResponse}},
        summary="Sync now",
    )
    def sync_user(
        user_id: str,
        body: Annotated[SyncNowRequest | None, Body()] = None,
    ) -> Any:
        """Queues a sync of the user's services through the push path: one inbox row per
        service, which the inbox sensor batches into that service's sync run."""
        services = [sync_now.Service(s) for s in (body.services if body and body.services else [])]
        services = services or list(sync_now.SYNC_SOURCES)
        try:
            with engine.begin() as conn:
                requested = sync_now.request_sync(conn, user_id, services)
        except sync_now.UnknownUser:
            raise _error(404, "unknown_user", f"no user {user_id}") from None
        except sync_now.GrantNotUsable as exc:
            raise _error(409, "grant_not_usable", str(exc)) from None
        return {
            "user_id": user_id,
            "requests": [
                {"service": r.service.value, "inbox_id": r.inbox_id, "queued": r.queued} for r in requested
            ],
        }

    @app.get(
        "/users/{user_id}/sync-status",
        tags=["sync"],
        response_model=SyncStatusResponse,
        dependencies=authenticated,
        responses=ERRORS,
        summary="Sync status per service",
    )
    def user_sync_status(user_id: str) -> Any:
        """Per service: last sync, interval, changes found, last error, failures in a row, waiting
        notifications; and the Google grant's status (never a token)."""
        try:
            with engine.begin() as conn:
                return sync_now.sync_status(conn, user_id)
        except sync_now.UnknownUser:
            raise _error(404, "unknown_user", f"no user {user_id}") from None

    return app


@dataclass(frozen=True)
class _Completed:
    """What Google gave for a flow, before anything is stored (the token stays out of repr)."""

    token: dict[str, Any] = field(repr=False)
    account: dict[str, Any]
    timezone: str | None
    scopes: list[str]


def _complete(
    settings: FrontendSettings, flow: oauth.Flow, code: str | None, error: str | None
) -> _Completed:
    """Google's side of the callback: consent answer, code exchange, scopes, account."""
    if flow.expired:
        raise ConnectError(
            400,
            "state_expired",
            f"the connect flow is older than {settings.state_ttl_seconds} s: start again",
        )
    if error:
        raise ConnectError(400, "google_error", f"Google answered error={error[:100]}")
    if not code:
        raise ConnectError(400, "missing_code", "the callback carries no authorization code")
    token = oauth.exchange_code(settings, code, flow)
    scopes = oauth.granted_scopes(token, flow.scopes)
    missing = oauth.missing_scopes(flow.scopes, scopes)
    if missing:
        raise ConnectError(400, "missing_scopes", "Sunny needs these scopes: " + " ".join(missing))
    account = oauth.read_account(settings, token["access_token"])
    timezone = oauth.read_timezone(settings, token["access_token"])
    return _Completed(token, account, timezone, scopes)
