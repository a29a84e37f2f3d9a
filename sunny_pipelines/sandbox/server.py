"""The sandbox HTTP server: routing, Google API request handling (auth, faults, counters), control
endpoints under `/sandbox/`, and `SandboxServer`, which runs it all in a background thread."""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sunny_pipelines.sandbox.calendar_api import CalendarApi
from sunny_pipelines.sandbox.common import ApiError, auth_error, backend_error, bad_request, not_found
from sunny_pipelines.sandbox.google_oauth import GoogleOAuth
from sunny_pipelines.sandbox.routing import Request, Response, Router, json_response, route
from sunny_pipelines.sandbox.seed import seed_world
from sunny_pipelines.sandbox.world import OAuthError, World

log = logging.getLogger(__name__)

# Paths answered in Google's JSON error format even when no route matches.
_GOOGLE_PREFIXES = ("calendar",)


class SandboxApp:
    """Dispatches parsed requests to the emulated services."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.router = Router()
        self.router.extend(self._control_routes())
        self.router.extend(GoogleOAuth(world).routes())
        self.router.extend(CalendarApi(world).routes())

    def dispatch(self, req: Request) -> Response:
        matched, params, path_exists = self.router.match(req.method, req.segments)
        try:
            if matched is None:
                if req.segments and req.segments[0] in _GOOGLE_PREFIXES:
                    if path_exists:
                        raise ApiError(405, "httpMethodNotAllowed", "Method Not Allowed")
                    raise not_found()
                return json_response({"error": "not found", "path": req.path}, 405 if path_exists else 404)
            if matched.api is not None:
                return self._google_api(matched, req, params)
            return matched.handler(req, **params)
        except ApiError as exc:
            return json_response(exc.body(), exc.code, exc.headers)
        except OAuthError as exc:
            return json_response(exc.body(), exc.status)
        except Exception:
            log.exception("sandbox error on %s %s", req.method, req.path)
            err = backend_error(500)
            return json_response(err.body(), 500)

    def _google_api(self, matched: Any, req: Request, params: dict[str, str]) -> Response:
        auth = self.world.authenticate(req.bearer)
        email = auth[0].email if auth else None
        self.world.count_request(email, req.path)
        latency_ms, fault = self.world.take_faults(email)
        if latency_ms:
            time.sleep(latency_ms / 1000)
        if auth is None:
            raise auth_error()
        if fault is not None:
            raise fault
        req.user, req.token = auth
        if matched.scopes and not (matched.scopes & req.token.scopes):
            raise ApiError(403, "insufficientPermissions", "Request had insufficient authentication scopes.")
        return matched.handler(req, **params)

    # -- control endpoints ---------------------------------------------------------------------------------

    def _control_routes(self) -> list[Any]:
        return [
            route("GET", "/healthz", lambda req: json_response({"status": "ok"})),
            route("GET", "/sandbox/users", lambda req: json_response(self.world.list_users())),
            route("POST", "/sandbox/users", self._add_user),
            route("POST", "/sandbox/users/reconnect", self._reconnect_user),
            route("POST", "/sandbox/faults", self._faults),
            route("DELETE", "/sandbox/faults", self._clear_faults),
            route("POST", "/sandbox/notifications", self._notifications_config),
            route("GET", "/sandbox/notifications", self._notifications_log),
            route("GET", "/sandbox/calendar/truth", self._calendar_truth),
            route("GET", "/sandbox/requests", self._request_count),
            route("DELETE", "/sandbox/requests", self._reset_counters),
            route("POST", "/sandbox/clock", self._advance_clock),
            route("GET", "/oauth2/v1/certs", lambda req: json_response(self.world.signer.certs())),
            route("POST", "/sandbox/pubsub/push", self._pubsub_push),
            route("POST", "/sandbox/attendee/emit", self._attendee_emit),
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
        with self.world.lock:
            delivered = list(self.world.delivered_notifications)
            dropped = self.world.dropped_notifications
        return json_response({"delivered": delivered, "dropped": dropped})

    def _calendar_truth(self, req: Request) -> Response:
        try:
            return json_response(self.world.calendar_truth(req.arg("email") or ""))
        except KeyError:
            raise not_found("unknown user") from None

    def _request_count(self, req: Request) -> Response:
        count = self.world.request_count(req.arg("email"), req.arg("path_prefix"))
        return json_response({"count": count})

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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: httplib2 reuses its connections
    server_version = "SunnySandbox/0.1"
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    # Without these, headers and body leave as two small segments and Nagle + delayed ACK add ~40 ms.
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        parts = urlsplit(self.path)
        raw_path = parts.path or "/"
        segments = [unquote(s) for s in raw_path.strip("/").split("/")] if raw_path.strip("/") else []
        req = Request(
            method=self.command,
            path=unquote(raw_path),
            segments=segments,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
        )
        resp = self.server.app.dispatch(req)
        self.send_response(resp.status)
        for key, value in resp.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD" and resp.body:
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: SandboxApp) -> None:
        self.app = app
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket, alive: bool) -> None:
        with self._conns_lock:
            if alive:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def close_connections(self) -> None:
        # Idle keep-alive connections would otherwise hold handler threads until their timeout.
        with self._conns_lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class SandboxServer:
    """The sandbox, seeded and served from a background thread.

    >>> sb = SandboxServer(port=0, users=3, events_per_user=12, seed=1).start()
    >>> sb.base_url, sb.world.list_users()[0]["email"]
    >>> sb.stop()
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        users: int = 3,
        events_per_user: int = 12,
        seed: int = 1,
        notification_drop_rate: float = 0.0,
        world: World | None = None,
    ) -> None:
        if world is None:
            world = World(seed=seed)
            seed_world(world, users, events_per_user)
        self.world = world
        self.world.set_notification_drop_rate(notification_drop_rate)
        self.app = SandboxApp(world)
        self._httpd = _HTTPServer((host, port), self.app)
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self.world.base_url = self.base_url
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> SandboxServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="sandbox-http",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()
        self._httpd.close_connections()
        self.world.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
