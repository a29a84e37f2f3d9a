"""The sandbox's HTTP app: Starlette routing over the control endpoints and every service's routes.

Handlers are plain functions (`handler(request, **path_params) -> Response`). They only touch
in-memory state under short locks, so they run on the event loop itself, as the old threaded
server ran them on the connection's thread: a hop through a worker thread costs more than the
handler under CPU contention. Injected latency is awaited, never slept. Routes marked `blocking`
(those that make outgoing HTTP calls) run in a worker thread. Google API routes get bearer
authentication, fault injection and request counting here, once for every service.
"""

from __future__ import annotations

import asyncio
import http.client
import logging
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response
from starlette.routing import Route

from sunny_pipelines.sandbox.core.accounts import OAuthError
from sunny_pipelines.sandbox.core.common import ApiError, auth_error, backend_error, bad_request, not_found
from sunny_pipelines.sandbox.core.http import Request, json_response
from sunny_pipelines.sandbox.core.plugin import ApiRoute, route
from sunny_pipelines.sandbox.world import World

log = logging.getLogger(__name__)


class SandboxApp:
    """Dispatches requests to the control endpoints and the emulated services."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.routes: list[ApiRoute] = self._control_routes()
        for service in world.services.values():
            self.routes.extend(service.routes())
        # First path segments answered in Google's JSON error format even when no route matches.
        self.google_prefixes = {p for s in world.services.values() for p in s.error_prefixes}

    def asgi(self) -> Starlette:
        return Starlette(
            routes=[Route(r.path, self._endpoint(r), methods=[r.method]) for r in self.routes],
            exception_handlers={HTTPException: self._unmatched},
        )

    def _endpoint(self, api_route: ApiRoute) -> Any:
        async def endpoint(request: StarletteRequest) -> Response:
            req = Request(
                method=request.method,
                path=request.url.path,
                query=parse_qs(request.url.query, keep_blank_values=True),
                headers=request.headers,
                body=await request.body(),
            )
            params = dict(request.path_params)
            if api_route.blocking:
                return await run_in_threadpool(self.dispatch, api_route, req, params)
            if api_route.api is not None:
                # Authentication, counting and faults first, so injected latency is awaited.
                delay = self._guard(req)
                if delay:
                    await asyncio.sleep(delay)
            return self.dispatch(api_route, req, params, guarded=True)

        return endpoint

    async def _unmatched(self, request: StarletteRequest, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        path = request.url.path
        first = path.strip("/").split("/")[0]
        if first in self.google_prefixes:
            err = (
                ApiError(405, "httpMethodNotAllowed", "Method Not Allowed") if status == 405 else not_found()
            )
            return json_response(err.body(), err.code, err.headers)
        return json_response({"error": "not found", "path": path}, status)

    def dispatch(
        self, api_route: ApiRoute, req: Request, params: dict[str, str], guarded: bool = False
    ) -> Response:
        try:
            if api_route.api is not None:
                return self._google_api(api_route, req, params, guarded)
            return api_route.handler(req, **params)
        except ApiError as exc:
            return json_response(exc.body(), exc.code, exc.headers)
        except OAuthError as exc:
            return json_response(exc.body(), exc.status)
        except Exception:
            log.exception("sandbox error on %s %s", req.method, req.path)
            err = backend_error(500)
            return json_response(err.body(), 500)

    def _guard(self, req: Request) -> float:
        """Authenticate, count the request and take its queued faults (kept on the request, to answer
        once the latency has passed); returns that latency in seconds."""
        world = self.world
        auth = world.accounts.authenticate(req.bearer)
        if auth is not None:
            req.user, req.token = auth
        world.counters.count(auth[0].email if auth else None, req.path)
        latency_ms, req.pending_error = world.faults.take(auth[0].email if auth else None)
        return latency_ms / 1000

    def _google_api(
        self, api_route: ApiRoute, req: Request, params: dict[str, str], guarded: bool = False
    ) -> Response:
        if not guarded:
            self.world.sleep(self._guard(req))
        if req.user is None or req.token is None:
            raise auth_error()
        if req.pending_error is not None:
            raise req.pending_error
        if api_route.scopes and not (api_route.scopes & req.token.scopes):
            raise ApiError(403, "insufficientPermissions", "Request had insufficient authentication scopes.")
        return api_route.handler(req, **params)

    # -- control endpoints ---------------------------------------------------------------------------------

    def _control_routes(self) -> list[ApiRoute]:
        world = self.world
        return [
            route("GET", "/healthz", lambda req: json_response({"status": "ok"})),
            route("GET", "/sandbox/users", lambda req: json_response(world.list_users())),
            route("POST", "/sandbox/users", self._add_user),
            route("POST", "/sandbox/users/reconnect", self._reconnect_user),
            route("POST", "/sandbox/faults", self._faults),
            route("DELETE", "/sandbox/faults", self._clear_faults),
            route("POST", "/sandbox/notifications", self._notifications_config),
            route("GET", "/sandbox/notifications", self._notifications_log),
            route("GET", "/sandbox/requests", self._request_count),
            route("DELETE", "/sandbox/requests", self._reset_counters),
            route("POST", "/sandbox/clock", self._advance_clock),
            route("GET", "/sandbox/{service}/truth", self._truth),
            route("POST", "/sandbox/pubsub/push", self._pubsub_push, blocking=True),
            route("POST", "/sandbox/pubsub/subscriptions", self._pubsub_subscribe),
            route("GET", "/sandbox/pubsub/subscriptions", self._pubsub_subscriptions),
            route("POST", "/sandbox/attendee/emit", self._attendee_emit, blocking=True),
        ]

    def _add_user(self, req: Request) -> Response:
        body = req.json()
        try:
            user = self.world.add_user(body["email"], body.get("name"), body.get("timezone") or "UTC")
        except (KeyError, ValueError) as exc:
            raise bad_request(f"cannot add user: {exc}") from None
        return json_response(user, 201)

    def _reconnect_user(self, req: Request) -> Response:
        try:
            return json_response(self.world.reconnect_user(req.json().get("email", "")))
        except KeyError:
            raise not_found("unknown user") from None

    def _faults(self, req: Request) -> Response:
        body = req.json()
        try:
            self.world.inject_fault(
                str(body.get("kind")),
                user_email=body.get("user_email"),
                count=int(body.get("count", 1)),
                latency_ms=int(body.get("latency_ms", 0)),
                status=int(body["status"]) if body.get("status") is not None else None,
            )
        except (ValueError, TypeError) as exc:
            raise bad_request(str(exc)) from None
        except KeyError:
            raise not_found("unknown user") from None
        return json_response({"ok": True})

    def _clear_faults(self, req: Request) -> Response:
        self.world.clear_faults()
        return json_response({"ok": True})

    def _notifications_config(self, req: Request) -> Response:
        try:
            self.world.set_notification_drop_rate(float(req.json().get("drop_rate", 0.0)))
        except (ValueError, TypeError) as exc:
            raise bad_request(str(exc)) from None
        return json_response({"drop_rate": self.world.notification_drop_rate})

    def _notifications_log(self, req: Request) -> Response:
        channels = self.world.channels
        with channels.lock:
            delivered = list(channels.delivered)
            dropped = channels.dropped
        return json_response({"delivered": delivered, "dropped": dropped})

    def _truth(self, req: Request, service: str) -> Response:
        if service not in self.world.services:
            raise not_found(f"unknown service {service!r}")
        try:
            return json_response(self.world.truth(service, req.arg("email") or ""))
        except KeyError:
            raise not_found("unknown user") from None
        except NotImplementedError as exc:
            raise not_found(str(exc)) from None

    def _request_count(self, req: Request) -> Response:
        return json_response({"count": self.world.request_count(req.arg("email"), req.arg("path_prefix"))})

    def _reset_counters(self, req: Request) -> Response:
        self.world.reset_counters()
        return json_response({"ok": True})

    def _pubsub_push(self, req: Request) -> Response:
        body = req.json()
        if not body.get("endpoint"):
            raise bad_request("endpoint is required")
        audience = body.get("audience") or body["endpoint"]
        try:
            status = self.world.pubsub_push(
                body["endpoint"], audience, body.get("data", {}), body.get("attributes")
            )
        except (OSError, ValueError, http.client.HTTPException) as exc:
            return json_response({"error": f"push failed: {exc}"}, 502)
        return json_response({"status": status})

    def _pubsub_subscribe(self, req: Request) -> Response:
        body = req.json()
        if not body.get("topic") or not body.get("push_endpoint"):
            raise bad_request("topic and push_endpoint are required")
        try:
            sub = self.world.create_push_subscription(
                str(body["topic"]), str(body["push_endpoint"]), body.get("audience"), body.get("name")
            )
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        return json_response(sub, 201)

    def _pubsub_subscriptions(self, req: Request) -> Response:
        pubsub = self.world.pubsub
        subs = [
            {"name": s.name, "topic": s.topic, "push_endpoint": s.push_endpoint, "audience": s.audience}
            for s in pubsub.subscriptions(req.arg("topic"))
        ]
        return json_response(
            {"subscriptions": subs, "delivered": list(pubsub.delivered), "dropped": pubsub.dropped}
        )

    def _attendee_emit(self, req: Request) -> Response:
        body = req.json()
        if not body.get("url") or not body.get("secret") or not isinstance(body.get("payload"), dict):
            raise bad_request("url, secret and payload (an object) are required")
        try:
            status = self.world.attendee_emit(body["url"], body["secret"], body["payload"])
        except (OSError, ValueError, http.client.HTTPException) as exc:
            return json_response({"error": f"delivery failed: {exc}"}, 502)
        return json_response({"status": status})

    def _advance_clock(self, req: Request) -> Response:
        self.world.advance_clock(float(req.json().get("advance_seconds", 0)))
        return json_response({"now": self.world.now()})
