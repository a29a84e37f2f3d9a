"""The webhook receiver: a Starlette app that turns push notifications into inbox rows.

Every accepted notification is one `webhook_inbox` row committed before the 2xx answer; a
re-delivery (same dedup_key) is answered 200 `{"status": "duplicate"}` and stores nothing.
Whatever cannot be authenticated or parsed is answered 4xx with `{"error": reason}`, logged at
WARNING (reason, path, channel or message id: never a token, secret, signature or JWT) and
counted per reason; database trouble is answered 503 so that the sender retries.

Status codes (reason in the JSON body):
  200  accepted | duplicate | sync (channel handshake, not queued) | Gmail message acknowledged
       but recorded as a `rejected` row (unknown_mailbox, bad_message_data, missing_data)
  400  bad_json, bad_payload, bad_envelope, missing_header, bad_header, bad_content_length
  401  missing_signature, bad_signature, attendee_secret_not_configured, missing_auth, bad_jwt,
       jwt_expired, jwt_wrong_audience, jwt_wrong_issuer
  403  bad_channel_token, resource_mismatch, channel_inactive (stopped/replaced),
       channel_expired, wrong_service_account, email_not_verified, bad_shared_secret
  404  unknown_channel, wrong_endpoint (channel of another service), not_found (path)
  405  method_not_allowed    413  body_too_large
  503  database_unavailable, certs_unavailable (Google retries both)
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

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sunny_pipelines.db.engine import get_engine
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
_MESSAGE_NUMBER = re.compile(r"[0-9]{1,19}")
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


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes: checked against
    Content-Length up front and again while streaming (the header may lie or be absent)."""
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


class WebhookReceiver:
    """The endpoints, bound to one settings object, one engine, one cert cache, one counter set."""

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self.engine: Engine = get_engine(settings.database_url)
        self.counters = Counters()
        self.certs = CertCache(settings.pubsub_certs_url, ttl_seconds=settings.certs_ttl_seconds)
        self._attendee_key = settings.attendee_key()

    # --- plumbing -------------------------------------------------------------------------

    def _refuse(self, request: Request, status: int, reason: str, ref: str | None) -> JSONResponse:
        self.counters.reject(reason)
        level = logging.ERROR if status >= 500 else logging.WARNING
        log.log(level, "webhook rejected: reason=%s status=%d path=%s ref=%r",
                reason, status, request.url.path, _short(ref))  # fmt: skip
        return JSONResponse({"error": reason}, status_code=status)

    async def _guarded(self, request: Request, handler: Callable[[Request], Awaitable[Response]]) -> Response:
        try:
            return await handler(request)
        except Rejected as exc:
            return self._refuse(request, exc.status, exc.reason, exc.ref)
        except ClientDisconnect:
            # Nobody is listening for an answer; nothing was stored.
            log.info("webhook client disconnected: path=%s", request.url.path)
            return Response(status_code=400)

    async def _db(self, ref: str | None, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await run_in_threadpool(fn, self.engine, *args)
        except DatabaseUnavailable:
            raise Rejected(503, "database_unavailable", ref) from None

    def _answer(self, request: Request, source: str, ref: str | None, result: StoreResult) -> JSONResponse:
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

    async def calendar(self, request: Request) -> Response:
        return await self._guarded(request, lambda r: self._google_channel(r, "calendar"))

    async def drive(self, request: Request) -> Response:
        return await self._guarded(request, lambda r: self._google_channel(r, "drive"))

    async def _google_channel(self, request: Request, endpoint: str) -> Response:
        headers = request.headers
        ref = headers.get("x-goog-channel-id")
        # Headers carry the notification, but a body still counts against the limit.
        await read_body(request, self.settings.max_body_bytes)
        if any(not headers.get(name, "").strip() for name in REQUIRED_CHANNEL_HEADERS):
            raise Rejected(400, "missing_header", ref)
        if any(len(v) > _MAX_HEADER_CHARS for k, v in headers.items() if k.startswith("x-goog-")):
            raise Rejected(400, "bad_header", ref)
        number = headers["x-goog-message-number"].strip()
        if not _MESSAGE_NUMBER.fullmatch(number):
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
        result = await self._db(ref, inbox.store_channel_notification, endpoint, note)
        return self._answer(request, inbox.ENDPOINT_SOURCES[endpoint], ref, result)

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
        body = await read_body(request, self.settings.max_body_bytes)
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
        return self._answer(request, "google_gmail", message_id, result)

    # --- Attendee -----------------------------------------------------------------------------

    async def attendee(self, request: Request) -> Response:
        return await self._guarded(request, self._attendee)

    async def _attendee(self, request: Request) -> Response:
        body = await read_body(request, self.settings.max_body_bytes)
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
        return self._answer(request, "attendee", key, result)

    # --- health -------------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        try:
            await run_in_threadpool(inbox.check_database, self.engine)
            database, status, code = "ok", "ok", 200
        except DatabaseUnavailable:
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
        or not history.isascii()
        or not history.isdigit()
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
            Route("/webhooks/google/calendar", receiver.calendar, methods=["POST"]),
            Route("/webhooks/google/drive", receiver.drive, methods=["POST"]),
            Route("/webhooks/google/gmail", receiver.gmail, methods=["POST"]),
            Route("/webhooks/attendee", receiver.attendee, methods=["POST"]),
            Route("/healthz", receiver.healthz, methods=["GET"]),
        ],
        exception_handlers={HTTPException: receiver.http_error},
    )
    app.state.receiver = receiver
    app.state.settings = settings
    return app
