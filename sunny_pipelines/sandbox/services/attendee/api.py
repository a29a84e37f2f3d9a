"""Attendee's `/api/v1/bots` routes and the sandbox's `/sandbox/attendee/...` control routes.

Attendee authenticates with `Authorization: Token <key>` (not Google's bearer tokens), and answers
errors the way Django REST framework does: `{"detail": ...}` for authentication, throttling and
bad cursors, `{"error": ...}` from its views, `{"field": ["message"]}` for invalid input. So these
routes take no `api=` from the core: they do their own authentication, fault injection and
request counting (the core's counters). Every route is `blocking` (run in a worker thread) so that
injected latency and the slow create can simply sleep.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.responses import Response

from sunny_pipelines.sandbox.core.http import Request, json_response
from sunny_pipelines.sandbox.core.plugin import ApiRoute, route
from sunny_pipelines.sandbox.services.attendee.store import (
    ENDED,
    FATAL_ERROR,
    JOINED_RECORDING,
    JOINING,
    SCHEDULED,
    Bot,
    parse_iso,
)

if TYPE_CHECKING:
    from sunny_pipelines.sandbox.services.attendee import AttendeeService

PAGE_SIZE = 20
WEBHOOK_TRIGGERS = frozenset(
    {
        "bot.state_change",
        "transcript.update",
        "chat_messages.update",
        "participant_events.join_leave",
        "calendar.events_update",
        "calendar.state_change",
    }
)
DEDUP_IN_USE = (
    "Deduplication key already in use. A bot in a non-terminal state with this deduplication key already "
    "exists. Please use a different deduplication key or wait for that bot to terminate."
)


class AttendeeError(Exception):
    """An error answered as Attendee answers it: `body` as JSON with `status`."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def _error(status: int, message: str) -> AttendeeError:
    return AttendeeError(status, {"error": message})


def _field_error(name: str, message: str) -> AttendeeError:
    return AttendeeError(400, {name: [message]})


def _bot_not_found() -> AttendeeError:
    return _error(404, "Bot not found")


class AttendeeApi:
    def __init__(self, service: AttendeeService) -> None:
        self.service = service
        self.world = service.world

    def routes(self) -> list[ApiRoute]:
        api = self._api
        return [
            route("GET", "/api/v1/bots", api(self.list_bots), blocking=True),
            route("POST", "/api/v1/bots", api(self.create_bot, create=True), blocking=True),
            route("GET", "/api/v1/bots/{object_id}", api(self.get_bot), blocking=True),
            route("PATCH", "/api/v1/bots/{object_id}", api(self.patch_bot), blocking=True),
            route("DELETE", "/api/v1/bots/{object_id}", api(self.delete_bot), blocking=True),
            route("POST", "/api/v1/bots/{object_id}/leave", api(self.leave), blocking=True),
            route("GET", "/api/v1/bots/{object_id}/transcript", api(self.transcript), blocking=True),
            route("POST", "/api/v1/bots/{object_id}/delete_data", api(self.delete_data), blocking=True),
            # Sandbox control routes (no Attendee auth), for tests and other processes.
            route("GET", "/sandbox/attendee/bots", self._admin(self.admin_bots)),
            route("POST", "/sandbox/attendee/bots/{object_id}/end", self._admin(self.admin_end)),
            route("POST", "/sandbox/attendee/bots/{object_id}/fail", self._admin(self.admin_fail)),
            route("GET", "/sandbox/attendee/webhooks", self._admin(self.admin_webhooks)),
            route("POST", "/sandbox/attendee/webhooks", self._admin(self.admin_subscribe)),
        ]

    # -- the request pipeline --------------------------------------------------------------------------

    def _api(self, handler: Callable[..., Response], create: bool = False) -> Callable[..., Response]:
        """Count, inject queued faults, authenticate, play the clock forward, then handle."""

        def endpoint(req: Request, **params: str) -> Response:
            service = self.service
            self.world.count_request(None, req.path)
            latency_ms, error = service.faults.take(None)
            if latency_ms:
                self.world.sleep(latency_ms / 1000)
            try:
                if error is not None:
                    raise self._fault_error(error.code)
                self._authenticate(req)
                if create and service.take_conflict():
                    raise _error(409, "Conflict (injected by the sandbox)")
                with self.world.lock:
                    service.store.advance_all()
                return handler(req, **params)
            except AttendeeError as exc:
                return json_response(exc.body, exc.status, exc.headers)

        return endpoint

    def _fault_error(self, status: int) -> AttendeeError:
        if status == 429:
            retry_after = int(self.world.attendee_retry_after_seconds)
            return AttendeeError(
                429,
                {"detail": f"Request was throttled. Expected available in {retry_after} seconds."},
                {"Retry-After": str(retry_after)},
            )
        return AttendeeError(status, {"detail": "Service temporarily unavailable, try again later."})

    def _authenticate(self, req: Request) -> None:
        scheme, _, key = req.headers.get("Authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": "Token"}
        if scheme.lower() != "token" or not key.strip():
            raise AttendeeError(401, {"detail": "Authentication credentials were not provided."}, challenge)
        if key.strip() != self.world.attendee_api_key:
            raise AttendeeError(401, {"detail": "Invalid token."}, challenge)

    @staticmethod
    def _body(req: Request) -> dict[str, Any]:
        if not req.body.strip():
            return {}
        try:
            value = json.loads(req.body)
        except ValueError as exc:
            raise AttendeeError(400, {"detail": f"JSON parse error - {exc}"}) from None
        if not isinstance(value, dict):
            raise AttendeeError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
        return value

    def _bot(self, object_id: str) -> Bot:
        bot = self.service.store.get(object_id)
        if bot is None:
            raise _bot_not_found()
        return bot

    # -- /api/v1/bots ----------------------------------------------------------------------------------

    def list_bots(self, req: Request) -> Response:
        bots = self.service.store.listed()
        key = req.arg("deduplication_key")
        if key is not None:
            bots = [b for b in bots if b.deduplication_key == key]
        meeting_url = req.arg("meeting_url")
        if meeting_url is not None:
            bots = [b for b in bots if b.meeting_url == meeting_url]
        states = {s for value in req.query.get("states", []) for s in value.split(",") if s}
        if states:
            bots = [b for b in bots if b.state in states]
        for name, keep in (("join_at_after", lambda j, t: j > t), ("join_at_before", lambda j, t: j < t)):
            text = req.arg(name)
            if text:
                try:
                    limit = parse_iso(text)
                except ValueError:
                    raise _field_error(name, "Enter a valid date/time.") from None
                bots = [b for b in bots if b.join_at is not None and keep(b.join_at, limit)]
        cursor = req.arg("cursor")
        if cursor:
            decoded = self.world.codec.decode(cursor)
            if not decoded or not isinstance(decoded.get("before_seq"), int):
                raise AttendeeError(404, {"detail": "Invalid cursor"})
            bots = [b for b in bots if b.seq < decoded["before_seq"]]
        page, rest = bots[:PAGE_SIZE], bots[PAGE_SIZE:]
        next_url = None
        if rest:
            params = [(k, v) for k, values in req.query.items() if k != "cursor" for v in values]
            params.append(("cursor", self.world.codec.encode({"before_seq": page[-1].seq})))
            next_url = f"{self.world.base_url}{req.path}?{urlencode(params)}"
        with self.world.lock:
            results = [b.view() for b in page]
        return json_response({"next": next_url, "previous": None, "results": results})

    def create_bot(self, req: Request) -> Response:
        body = self._body(req)
        meeting_url, bot_name = body.get("meeting_url"), body.get("bot_name")
        for name, value in (("meeting_url", meeting_url), ("bot_name", bot_name)):
            if value is None:
                raise _field_error(name, "This field is required.")
            if not isinstance(value, str) or not value.strip():
                raise _field_error(name, "This field may not be blank.")
        join_at = self._join_at(body)
        key = body.get("deduplication_key")
        if key is not None and (not isinstance(key, str) or not key):
            raise _field_error("deduplication_key", "This field may not be blank.")
        metadata = body.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise _field_error("metadata", "Metadata must be an object not an array or other type")
        webhooks = self._webhooks(body.get("webhooks"))
        seconds = self.service.meeting_seconds(metadata, body.get("automatic_leave_settings"))
        service = self.service
        with self.world.lock:
            if key is not None and service.store.active_with_key(key) is not None:
                # Attendee answers a key in use with a 400 (its OpenAPI document lists no 409).
                raise _error(400, DEDUP_IN_USE)
            bot = service.store.create(
                str(meeting_url), str(bot_name), metadata, key, join_at, seconds, webhooks
            )
            service.arm_fatal_error(bot)
            view = bot.view()
        slow_ms = service.take_slow_create()
        if slow_ms:
            # The bot exists already: a client that times out meanwhile must find it by its key.
            self.world.sleep(slow_ms / 1000)
        return json_response(view, 201)

    @staticmethod
    def _join_at(body: dict[str, Any]) -> float | None:
        value = body.get("join_at")
        if value is None:
            return None
        try:
            return parse_iso(str(value))
        except ValueError:
            raise _field_error(
                "join_at",
                "Datetime has wrong format. Use one of these formats instead: "
                "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].",
            ) from None

    @staticmethod
    def _webhooks(value: Any) -> list[dict[str, Any]]:
        if value is None:
            return []
        if not isinstance(value, list) or len(value) > 2:
            raise _field_error("webhooks", "Webhooks must be a list of at most 2 subscriptions.")
        out: list[dict[str, Any]] = []
        for item in value:
            url = item.get("url") if isinstance(item, dict) else None
            triggers = item.get("triggers") if isinstance(item, dict) else None
            # Attendee insists on https; the sandbox also takes http, for local receivers.
            if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                raise _field_error("webhooks", "webhook URL must start with https://")
            if any(w["url"] == url for w in out):
                raise _field_error("webhooks", "URL already exists for this bot")
            if not isinstance(triggers, list) or not triggers or not set(triggers) <= WEBHOOK_TRIGGERS:
                raise _field_error(
                    "webhooks", f"triggers must be a non-empty list of {sorted(WEBHOOK_TRIGGERS)}"
                )
            out.append({"url": url, "triggers": list(dict.fromkeys(triggers))})
        return out

    def get_bot(self, req: Request, object_id: str) -> Response:
        with self.world.lock:
            return json_response(self._bot(object_id).view())

    def patch_bot(self, req: Request, object_id: str) -> Response:
        body = self._body(req)
        with self.world.lock:
            bot = self._bot(object_id)
            restricted = [k for k in ("join_at", "meeting_url", "bot_name") if k in body]
            if restricted and bot.state != SCHEDULED:
                raise _error(
                    400, f"Bot is in state {bot.state} but can only be updated when in scheduled state"
                )
            if "metadata" in body:
                if body["metadata"] is not None and not isinstance(body["metadata"], dict):
                    raise _field_error("metadata", "Metadata must be an object not an array or other type")
                bot.metadata = body["metadata"]
            for name in ("meeting_url", "bot_name"):
                if name in body:
                    if not isinstance(body[name], str) or not body[name].strip():
                        raise _field_error(name, "This field may not be blank.")
                    setattr(bot, name, body[name])
            if "join_at" in body:
                join_at = self._join_at(body)
                if join_at is None:
                    raise _field_error("join_at", "This field may not be null.")
                self.service.store.reschedule(bot, join_at)
            return json_response(bot.view())

    def delete_bot(self, req: Request, object_id: str) -> Response:
        with self.world.lock:
            bot = self._bot(object_id)
            if bot.state != SCHEDULED:
                raise _error(
                    400, f"Bot is in state {bot.state} and can only be deleted when in scheduled state"
                )
            self.service.store.delete(bot)
        return Response(b"", 200)

    def leave(self, req: Request, object_id: str) -> Response:
        with self.world.lock:
            bot = self._bot(object_id)
            if bot.state not in (JOINING, JOINED_RECORDING):
                raise _error(400, f"Bot is in state {bot.state} and cannot leave the meeting")
            self.service.store.leave(bot)
            return json_response(bot.view())

    def transcript(self, req: Request, object_id: str) -> Response:
        after: float | None = None
        if req.arg("updated_after"):
            try:
                after = parse_iso(req.arg("updated_after") or "")
            except ValueError:
                raise _field_error("updated_after", "Enter a valid date/time.") from None
        with self.world.lock:
            bot = self._bot(object_id)
            utterances = self.service.store.utterances(bot)
            start = bot.recording_started_at or 0.0
        if after is not None:
            utterances = [u for u in utterances if start + (u.timestamp_ms + u.duration_ms) / 1000 > after]
        return json_response([u.view() for u in utterances])

    def delete_data(self, req: Request, object_id: str) -> Response:
        with self.world.lock:
            bot = self._bot(object_id)
            if bot.state not in (ENDED, FATAL_ERROR):
                raise _error(400, f"Bot is in state {bot.state} and its data cannot be deleted")
            self.service.store.delete_data(bot)
            return json_response(bot.view())

    # -- sandbox control routes ------------------------------------------------------------------------

    def _admin(self, handler: Callable[..., Response]) -> Callable[..., Response]:
        def endpoint(req: Request, **params: str) -> Response:
            try:
                return handler(req, **params)
            except KeyError:
                return json_response({"error": "Bot not found"}, 404)
            except ValueError as exc:
                return json_response({"error": str(exc)}, 400)

        return endpoint

    def admin_bots(self, req: Request) -> Response:
        return json_response(self.service.bots())

    def admin_end(self, req: Request, object_id: str) -> Response:
        return json_response(self.service.end_meeting(object_id))

    def admin_fail(self, req: Request, object_id: str) -> Response:
        reason = self._body(req).get("reason") or "process_terminated"
        return json_response(self.service.fail_bot(object_id, str(reason)))

    def admin_webhooks(self, req: Request) -> Response:
        sender = self.service.sender
        return json_response(
            {
                "subscriptions": self.service.subscriptions(),
                "delivered": list(sender.delivered),
                "dropped": sender.dropped,
            }
        )

    def admin_subscribe(self, req: Request) -> Response:
        body = req.json()
        if not isinstance(body.get("url"), str):
            raise ValueError("url is required")
        return json_response(self.service.subscribe(body["url"], body.get("triggers")), 201)
