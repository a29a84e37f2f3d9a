"""Serving the receiver with uvicorn: in a background thread (tests, benchmarks) or the CLI.

uvicorn (0.54, httptools) bounds neither the time a client takes to send its headers or body
(a connection that sends half a request stays open for good: `timeout_keep_alive` only runs
between requests) nor the size of the headers (a 2 MB header is accepted). `BoundedHttpProtocol`
adds both: headers must be complete within ``header_timeout`` of the connection (or of the
first byte of a later request on it) and the body within ``body_timeout`` of the headers;
otherwise the answer is 408 and the connection is closed. Headers (request line included)
beyond ``max_header_bytes`` are answered 431 and the connection is closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sunny_pipelines.webhooks.settings import WebhookSettings

log = logging.getLogger("sunny_pipelines.webhooks")

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
# The app answers a slow body itself (408 `body_timeout`) when it is the one reading it; the
# protocol's own body deadline is a backstop a little later (bodies nobody reads, other paths).
BODY_BACKSTOP_GRACE_SECONDS = 1.0


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header/body deadlines and a header size limit.

    Configure through a subclass made by `bounded_protocol` (uvicorn instantiates the class).
    """

    header_timeout: ClassVar[float] = 10.0
    body_timeout: ClassVar[float] = 10.0 + BODY_BACKSTOP_GRACE_SECONDS
    max_header_bytes: ClassVar[int] = 16 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._refused = False

    # --- deadlines ----------------------------------------------------------------------------

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, what)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, what: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        log.warning("webhook connection closed: reason=%s_timeout client=%s", what, self.client)
        cycle = self.cycle
        if what == "header":
            # `cycle` is a previous request's; only a pipelined answer still being written counts.
            answering = cycle is not None and cycle.response_started and not cycle.response_complete
        else:
            answering = cycle is not None and cycle.response_started
        if answering:
            # Answered early (the body still trickles in) or mid-answer: no second status line.
            self.transport.close()
        else:
            self._refuse(408, f"{what}_timeout")

    def _refuse(self, status: int, reason: str) -> None:
        self._refused = True
        self._disarm()
        body = json.dumps({"error": reason}, separators=(",", ":")).encode()
        head = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
        head += b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
        head += b"connection: close\r\n\r\n"
        self.transport.write(head + body)
        self.transport.close()

    # --- uvicorn / httptools hooks ------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout, "header")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)

    def on_message_begin(self) -> None:
        if self._refused:
            return
        super().on_message_begin()
        self._header_bytes = 0
        if self._deadline is None:
            self._arm(self.header_timeout, "header")

    def _count_header_bytes(self, n: int) -> None:
        if self._refused:
            return
        self._header_bytes += n
        if self._header_bytes > self.max_header_bytes:
            log.warning("webhook refused: reason=headers_too_large status=431 client=%s", self.client)
            # Answered and closing: the rest of this chunk goes through the parser into no-ops.
            self._refuse(431, "headers_too_large")

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        if not self._refused:
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value) + 4)
        if not self._refused:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        super().on_headers_complete()
        self._arm(self.body_timeout, "body")

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        if not self._refused:
            super().on_message_complete()


def bounded_protocol(settings: WebhookSettings) -> type[BoundedHttpProtocol]:
    """A `BoundedHttpProtocol` subclass carrying ``settings``' limits (uvicorn's ``http=``)."""
    return type(
        "BoundedHttpProtocol",
        (BoundedHttpProtocol,),
        {
            "header_timeout": settings.header_timeout,
            "body_timeout": settings.body_timeout + BODY_BACKSTOP_GRACE_SECONDS,
            "max_header_bytes": settings.max_header_bytes,
        },
    )


def uvicorn_options(settings: WebhookSettings) -> dict[str, Any]:
    """The uvicorn.Config / uvicorn.run options every way of serving the receiver shares."""
    return {
        "http": bounded_protocol(settings),
        "timeout_keep_alive": 5,
        # Behind a proxy in production; Google and Attendee retry, so no long graceful drain.
        "timeout_graceful_shutdown": 5,
    }


class RedactQueryString(logging.Filter):
    """Drops query strings from uvicorn access-log lines: the Pub/Sub fallback secret travels
    as `?token=` and must never reach a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].split("?", 1)[0] + "?[redacted]", *args[3:])
        return True


def install_log_redaction() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQueryString) for f in access.filters):
        access.addFilter(RedactQueryString())


def serve_in_thread(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log_level: str = "warning",
    startup_timeout: float = 10.0,
    settings: WebhookSettings | None = None,
) -> tuple[str, Callable[[], None]]:
    """Serve ``app`` with uvicorn in a daemon thread. Returns ``(base_url, stop)``.

    ``port=0`` binds a free port; the socket is bound here, before the thread starts, so the
    returned URL is known and connectable as soon as this function returns. The connection
    limits come from ``settings``, else from the receiver app's own settings, else defaults.
    """
    install_log_redaction()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    if settings is None:
        settings = getattr(getattr(app, "state", None), "settings", None)
    if not isinstance(settings, WebhookSettings):
        settings = WebhookSettings(database_url="sqlite://")
    config = uvicorn.Config(
        app, log_level=log_level, access_log=False, lifespan="auto", **uvicorn_options(settings)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"webhooks-uvicorn-{bound_port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"uvicorn did not start on {host}:{bound_port}")
        time.sleep(0.01)

    def stop(timeout: float = 10.0) -> None:
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
        sock.close()

    url_host = f"[{host}]" if family == socket.AF_INET6 else host
    return f"http://{url_host}:{bound_port}", stop
