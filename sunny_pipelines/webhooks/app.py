"""The webhook receiver: a Starlette app that turns push notifications into inbox rows.

Every accepted notification is one `webhook_inbox` row committed before the 2xx answer; a
re-delivery (same dedup_key) is answered 200 `{"status": "duplicate"}` and stores nothing.
Whatever cannot be authenticated or parsed is answered 4xx with `{"error": reason}`, logged at
WARNING (reason, path, channel or message id: never a token, secret, signature or JWT) and
counted per reason; database trouble is answered 503 so that the sender retries.

Status codes (reason in the JSON body):
  200  accepted | duplicate | sync (channel handshake, not queued) | Gmail message acknowledged
       but recorded as a `rejected` row (unknown_mailbox, bad_message_data, missing_data)
  400  bad_json, bad_payload, bad_envelope, missing_header, bad_header (also a message number
       beyond unsigned 64 bits), bad_content_length
  401  missing_signature, bad_signature, attendee_secret_not_configured, missing_auth, bad_jwt,
       jwt_expired, jwt_wrong_audience, jwt_wrong_issuer
  403  bad_channel_token, resource_mismatch, channel_inactive (stopped/replaced),
       channel_expired, wrong_service_account, email_not_verified, bad_shared_secret
  404  unknown_channel, wrong_endpoint (the channel was opened for another endpoint: its
       `watch_channels.address` names another path), not_found (path, or an endpoint that no
       inbox source names)
  405  method_not_allowed    408  body_timeout (connection closed)    413  body_too_large
  431  headers_too_large (request line + headers beyond SUNNY_WEBHOOK_MAX_HEADER_BYTES)
  503  database_unavailable (also a stall: lock, statement, connect and pool waits are bounded),
       certs_unavailable (Google retries both)

Google channel notifications arrive on `/webhooks/google/{endpoint}`: the endpoint names the
inbox source (`Source.for_google_endpoint`), and a channel is accepted only on the path it was
opened with. Adding a domain needs no change here.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sunny_pipelines.db.engine import get_engine
from sunny_pipelines.vocabulary import Source
from sunny_pipelines.webhooks import inbox
from sunny_pipelines.webhooks.auth import (
    AuthFailure,
    CertCache,
    CertsUnavailable,
    shared_secret_matches,
    verify_attendee_signature,
    verify_pubsub_jwt,
)
from sunny_pipelines.webhooks.inbox import ChannelNotification, DatabaseUnavailable, Rejected, StoreResult
from sunny_pipelines.webhooks.settings import WebhookSettings

log = logging.getLogger("sunny_pipelines.webhooks")

T = TypeVar("T")

# Google channel headers that every notification carries (Starlette headers are case-insensitive).
REQUIRED_CHANNEL_HEADERS = (
    "x-goog-channel-id",
    "x-goog-channel-token",
    "x-goog-resource-id",
    "x-goog-resource-state",
    "x-goog-message-number",
)
# Channel message numbers and Gmail history ids are unsigned 64-bit integers at most.
UINT64_MAX = 2**64 - 1
# Longest accepted values: beyond the database columns, or beyond anything Google/Attendee send.
_MAX_HEADER_CHARS = 2048
_MAX_ID_CHARS = 200
_MAX_USER_ID_CHARS = 64
# JSON strings PostgreSQL's JSONB (NUL) or UTF-8 encoding (lone surrogates) would refuse.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


class Counters:
    """Per-app counters for /healthz. Thread-safe: handlers finish on the threadpool too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.accepted = 0
        self.duplicates = 0
        self.sync = 0
        self.rejected: Counter[str] = Counter()

    def record(self, result: StoreResult) -> None:
        with self._lock:
            if result.outcome == "accepted":
                self.accepted += 1
            elif result.outcome == "duplicate":
                self.duplicates += 1
            elif result.outcome == "sync":
                self.sync += 1
            else:
                self.rejected[result.reason or "unusable"] += 1

    def reject(self, reason: str) -> None:
        with self._lock:
            self.rejected[reason] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "accepted": self.accepted,
                "duplicates": self.duplicates,
                "sync": self.sync,
                "rejected": dict(self.rejected),
            }


def _reject_constant(_name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def parse_json(body: bytes, ref: str | None = None) -> Any:
    """Strict JSON that the database can store as-is; anything else is a 400 `bad_json`."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Rejected(400, "bad_json", ref) from None
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                raise Rejected(400, "bad_json", ref)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


def is_uint64(text: str) -> bool:
    """ASCII digits naming an integer in [0, 2**64 - 1]."""
    return 0 < len(text) <= 20 and text.isascii() and text.isdigit() and int(text) <= UINT64_MAX


async def read_body(request: Request, limit: int, timeout: float | None = None) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes: checked against
    Content-Length up front and again while streaming (the header may lie or be absent). A body
    that takes longer than ``timeout`` seconds to arrive is refused with 408 `body_timeout`."""
    if timeout is None:
        return await _read_body(request, limit)
    try:
        with anyio.fail_after(timeout):
            return await _read_body(request, limit)
    except TimeoutError:
        raise Rejected(408, "body_timeout") from None


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isascii() or not declared.strip().isdigit():
            raise Rejected(400, "bad_content_length")
        if int(declared) > limit:
            raise Rejected(413, "body_too_large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Rejected(413, "body_too_large")
    return bytes(body)


def _short(value: str | None) -> str | None:
    # Caller-supplied ids go into logs: bound their length (repr in the log escapes newlines).
    return None if value is None else value[:100]


# Connections of the receiver's engine (pool_size + max_overflow); as many threads may use it.
_DB_CONNECTIONS = (10, 20)
# Error answers after which the connection is closed (the body may not have been read).
_CLOSE_AFTER = frozenset({408, 413, 431})


class WebhookReceiver:
    """The endpoints, bound to one settings object, one engine, one cert cache, one counter set.

    The receiver has its own engine (`get_engine` key ``webhooks …``) with bounded connect, lock,
    statement and pool waits, and /healthz another small one (``webhooks-health …``) with its own
    threads, so that a stalled database is answered 503 within seconds and never hangs /healthz.
    """

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        pool_size, max_overflow = _DB_CONNECTIONS
        options = settings.engine_options(pool_size=pool_size, max_overflow=max_overflow)
        health_options = settings.engine_options(pool_size=1, max_overflow=1)
        # Engines are cached per key: the options are part of it, so other bounds get other pools.
        self.engine: Engine = get_engine(
            settings.database_url, key=f"webhooks {options!r}", engine_options=options
        )
        self.health_engine: Engine = get_engine(
            settings.database_url, key=f"webhooks-health {health_options!r}", engine_options=health_options
        )
        # Requests wait at most db_pool_timeout for one of these slots (then 503); the threads
        # have a limiter of the same size, so a slot holder never waits for a thread.
        self._db_slots = anyio.CapacityLimiter(pool_size + max_overflow)
        self._db_threads = anyio.CapacityLimiter(pool_size + max_overflow)
        self._health_threads = anyio.CapacityLimiter(2)
        self.counters = Counters()
        self.certs = CertCache(settings.pubsub_certs_url, ttl_seconds=settings.certs_ttl_seconds)
        self._attendee_key = settings.attendee_key()

    # --- plumbing -------------------------------------------------------------------------

    def _refuse(self, request: Request, status: int, reason: str, ref: str | None) -> JSONResponse:
        self.counters.reject(reason)
        level = logging.ERROR if status >= 500 else logging.WARNING
        log.log(level, "webhook rejected: reason=%s status=%d path=%s ref=%r",
                reason, status, request.url.path, _short(ref))  # fmt: skip
        headers = {"connection": "close"} if status in _CLOSE_AFTER else None
        return JSONResponse({"error": reason}, status_code=status, headers=headers)

    def _check_header_size(self, request: Request) -> None:
        # uvicorn's protocol refuses these before the app (server.py); this covers other servers.
        size = len(request.scope.get("raw_path") or b"") + len(request.scope.get("query_string") or b"")
        size += sum(len(name) + len(value) + 4 for name, value in request.scope["headers"])
        if size > self.settings.max_header_bytes:
            raise Rejected(431, "headers_too_large")

    async def _guarded(self, request: Request, handler: Callable[[Request], Awaitable[Response]]) -> Response:
        try:
            self._check_header_size(request)
            return await handler(request)
        except Rejected as exc:
            return self._refuse(request, exc.status, exc.reason, exc.ref)
        except ClientDisconnect:
            # Nobody is listening for an answer; nothing was stored.
            log.info("webhook client disconnected: path=%s", request.url.path)
            return Response(status_code=400)

    async def _body(self, request: Request) -> bytes:
        return await read_body(request, self.settings.max_body_bytes, self.settings.body_timeout)

    async def _db(self, ref: str | None, fn: Callable[..., T], *args: Any) -> T:
        try:
            # A burst during a stall queues here: bounded, like the wait for a pooled connection.
            with anyio.fail_after(self.settings.db_pool_timeout):
                await self._db_slots.acquire()
        except TimeoutError:
            raise Rejected(503, "database_unavailable", ref) from None
        try:
            return await anyio.to_thread.run_sync(fn, self.engine, *args, limiter=self._db_threads)
        except DatabaseUnavailable:
            raise Rejected(503, "database_unavailable", ref) from None
        finally:
            self._db_slots.release()

    def _answer(self, request: Request, source: Source, ref: str | None, result: StoreResult) -> JSONResponse:
        self.counters.record(result)
        if result.outcome == "recorded_rejected":
            log.warning("webhook acknowledged but unusable: reason=%s path=%s ref=%r inbox_id=%s",
                        result.reason, request.url.path, _short(ref), result.inbox_id)  # fmt: skip
            return JSONResponse({"status": "rejected", "reason": result.reason, "id": result.inbox_id})
        log.info("webhook %s: source=%s ref=%r user=%s inbox_id=%s",
                 result.outcome, source, _short(ref), result.user_id, result.inbox_id)  # fmt: skip
        body: dict[str, Any] = {"status": result.outcome}
        if result.inbox_id is not None:
            body["id"] = result.inbox_id
        return JSONResponse(body)

    # --- Google channel notifications ----------------------------------------------------------

    async def google_channel(self, request: Request) -> Response:
        return await self._guarded(request, self._google_channel)

    async def _google_channel(self, request: Request) -> Response:
        headers = request.headers
        ref = headers.get("x-goog-channel-id")
        source = Source.for_google_endpoint(request.path_params["endpoint"])
        if source is None:
            raise Rejected(404, "not_found", ref)
        # Headers carry the notification, but a body still counts against the limit.
        await self._body(request)
        if any(not headers.get(name, "").strip() for name in REQUIRED_CHANNEL_HEADERS):
            raise Rejected(400, "missing_header", ref)
        if any(len(v) > _MAX_HEADER_CHARS for k, v in headers.items() if k.startswith("x-goog-")):
            raise Rejected(400, "bad_header", ref)
        number = headers["x-goog-message-number"].strip()
        if not is_uint64(number):
            raise Rejected(400, "bad_header", ref)
        changed = [part.strip() for part in headers.get("x-goog-changed", "").split(",") if part.strip()]
        note = ChannelNotification(
            channel_id=headers["x-goog-channel-id"].strip(),
            token=headers["x-goog-channel-token"],
            resource_id=headers["x-goog-resource-id"].strip(),
            resource_state=headers["x-goog-resource-state"].strip(),
            message_number=int(number),
            resource_uri=headers.get("x-goog-resource-uri"),
            channel_expiration=headers.get("x-goog-channel-expiration"),
            changed=changed or None,
        )
        result = await self._db(ref, inbox.store_channel_notification, source, request.url.path, note)
        return self._answer(request, source, ref, result)

    # --- Gmail through Pub/Sub push -----------------------------------------------------------

    async def gmail(self, request: Request) -> Response:
        return await self._guarded(request, self._gmail)

    async def _authenticate_pubsub(self, request: Request) -> None:
        settings = self.settings
        authorization = request.headers.get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        bearer = credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None
        if settings.oidc_enabled and bearer is not None:
            try:
                await run_in_threadpool(
                    verify_pubsub_jwt,
                    bearer,
                    certs=self.certs,
                    audience=settings.pubsub_audience,
                    service_account=settings.pubsub_service_account,
                    issuers=settings.pubsub_issuers,
                )
            except AuthFailure as exc:
                raise Rejected(exc.status, exc.reason) from None
            except CertsUnavailable:
                raise Rejected(503, "certs_unavailable") from None
            return
        # Fallback for subscriptions without OIDC: a secret in the push endpoint's query string.
        if settings.pubsub_shared_secret:
            presented = request.query_params.get("token")
            if not presented:
                raise Rejected(401, "missing_auth")
            if not shared_secret_matches(presented, settings.pubsub_shared_secret):
                raise Rejected(403, "bad_shared_secret")
            return
        raise Rejected(401, "missing_auth")

    async def _gmail(self, request: Request) -> Response:
        body = await self._body(request)
        # Authenticate before parsing: nothing about the body is looked at for strangers.
        await self._authenticate_pubsub(request)
        envelope = parse_json(body)
        message = envelope.get("message") if isinstance(envelope, dict) else None
        if not isinstance(message, dict):
            raise Rejected(400, "bad_envelope")
        message_id = message.get("messageId") or message.get("message_id")
        if isinstance(message_id, int) and not isinstance(message_id, bool):
            message_id = str(message_id)
        if not isinstance(message_id, str) or not 0 < len(message_id) <= _MAX_ID_CHARS:
            # Without an id there is no dedup key; a real Pub/Sub push always has one.
            raise Rejected(400, "bad_envelope")
        payload, unusable = decode_gmail_message(envelope, message, message_id)
        result = await self._db(message_id, inbox.store_gmail_notification, message_id, payload, unusable)
        return self._answer(request, Source.GOOGLE_GMAIL, message_id, result)

    # --- Attendee -----------------------------------------------------------------------------

    async def attendee(self, request: Request) -> Response:
        return await self._guarded(request, self._attendee)

    async def _attendee(self, request: Request) -> Response:
        body = await self._body(request)
        payload = parse_json(body)
        try:
            verify_attendee_signature(payload, request.headers.get("x-webhook-signature"), self._attendee_key)
        except AuthFailure as exc:
            raise Rejected(exc.status, exc.reason) from None
        key = payload.get("idempotency_key") if isinstance(payload, dict) else None
        if not isinstance(key, str) or not 0 < len(key) <= _MAX_ID_CHARS:
            raise Rejected(400, "bad_payload")
        metadata = payload.get("bot_metadata")
        claimed = metadata.get("user_id") if isinstance(metadata, dict) else None
        if isinstance(claimed, int) and not isinstance(claimed, bool):
            claimed = str(claimed)
        if not isinstance(claimed, str) or not 0 < len(claimed) <= _MAX_USER_ID_CHARS:
            claimed = None
        result = await self._db(key, inbox.store_attendee_notification, payload, claimed)
        return self._answer(request, Source.ATTENDEE, key, result)

    # --- health -------------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        """Answers within `health_timeout` whatever the database does: its own engine and
        threads (never queued behind stalled requests), abandoned when the time is up."""
        try:
            with anyio.fail_after(self.settings.health_timeout):
                await anyio.to_thread.run_sync(
                    inbox.check_database,
                    self.health_engine,
                    limiter=self._health_threads,
                    abandon_on_cancel=True,
                )
            database, status, code = "ok", "ok", 200
        except (DatabaseUnavailable, TimeoutError):
            database, status, code = "unavailable", "error", 503
        return JSONResponse({"status": status, "database": database, **self.counters.snapshot()}, code)

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """Router-level 404 (unknown path) and 405 (wrong method), as JSON and counted."""
        status = getattr(exc, "status_code", 400)
        reason = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
        response = self._refuse(request, status, reason, None)
        if isinstance(exc, HTTPException) and exc.headers:
            response.headers.update(exc.headers)
        return response


def decode_gmail_message(
    envelope: dict[str, Any], message: dict[str, Any], message_id: str
) -> tuple[dict[str, Any], str | None]:
    """The inbox payload of a Pub/Sub Gmail message, and why it is unusable (None if usable).

    `data` is base64 (Pub/Sub sends standard base64; URL-safe is accepted too) of
    `{"emailAddress": ..., "historyId": ...}`. historyId is stored as a string, like the
    Gmail API's own uint64 ids.
    """
    publish_time = message.get("publishTime") or message.get("publish_time")
    subscription = envelope.get("subscription")
    payload: dict[str, Any] = {
        "emailAddress": None,
        "historyId": None,
        "messageId": message_id,
        "publishTime": publish_time if isinstance(publish_time, str) else None,
        "subscription": subscription if isinstance(subscription, str) else None,
    }
    data = message.get("data")
    if not isinstance(data, str) or not data:
        return payload, "missing_data"
    try:
        normalized = data.strip().replace("-", "+").replace("_", "/")
        raw = base64.b64decode(normalized + "=" * (-len(normalized) % 4), validate=True)
        decoded = parse_json(raw)
    except (ValueError, Rejected):
        payload["data"] = data[:512]
        return payload, "bad_message_data"
    email = decoded.get("emailAddress") if isinstance(decoded, dict) else None
    history = decoded.get("historyId") if isinstance(decoded, dict) else None
    if isinstance(history, int) and not isinstance(history, bool) and history >= 0:
        history = str(history)
    if (
        not isinstance(email, str)
        or "@" not in email
        or len(email) > 320
        or not isinstance(history, str)
        or not is_uint64(history)
    ):
        payload["data"] = data[:512]
        return payload, "bad_message_data"
    payload["emailAddress"] = email
    payload["historyId"] = history
    return payload, None


def create_app(settings: WebhookSettings | None = None) -> Starlette:
    """The receiver app. ``settings`` defaults to `WebhookSettings.from_env()`."""
    settings = settings or WebhookSettings.from_env()
    receiver = WebhookReceiver(settings)
    if bool(settings.pubsub_audience) != bool(settings.pubsub_service_account):
        log.warning("Pub/Sub OIDC needs both SUNNY_PUBSUB_AUDIENCE and SUNNY_PUBSUB_SERVICE_ACCOUNT")
    if not settings.oidc_enabled and not settings.pubsub_shared_secret:
        log.warning("no Pub/Sub authentication configured: /webhooks/google/gmail rejects everything")
    if settings.attendee_key() is None:
        log.warning("no Attendee webhook secret configured: /webhooks/attendee rejects everything")
    app = Starlette(
        routes=[
            # Pub/Sub's Gmail push first; every other Google endpoint is a channel endpoint.
            Route("/webhooks/google/gmail", receiver.gmail, methods=["POST"]),
            Route("/webhooks/google/{endpoint}", receiver.google_channel, methods=["POST"]),
            Route("/webhooks/attendee", receiver.attendee, methods=["POST"]),
            Route("/healthz", receiver.healthz, methods=["GET"]),
        ],
        exception_handlers={HTTPException: receiver.http_error},
    )
    app.state.receiver = receiver
    app.state.settings = settings
    return app
