"""Helpers for the sandbox's tests: real Google clients acting as sandbox users, and a tiny HTTP
receiver that records push notifications."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httplib2
from google.oauth2.credentials import Credentials
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build

from sunny_pipelines.sandbox.server import SandboxServer


def credentials(sb: SandboxServer, user: dict[str, Any], token: str | None = "current") -> Credentials:
    return Credentials(
        token=user["access_token"] if token == "current" else token,
        refresh_token=user["refresh_token"],
        token_uri=sb.base_url + "/token",
        client_id="sunny-test-client",
        client_secret="sunny-test-secret",
    )


def calendar_client(sb: SandboxServer, user: dict[str, Any], creds: Credentials | None = None) -> Any:
    """The Calendar v3 client exactly as the app builds it, pointed at the sandbox."""
    http = AuthorizedHttp(creds or credentials(sb, user), http=httplib2.Http(timeout=10))
    return build(
        "calendar",
        "v3",
        http=http,
        static_discovery=True,
        client_options={"api_endpoint": sb.base_url + "/calendar/v3/"},
    )


def list_all(service: Any, **kwargs: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every item of an events.list, following pages: (items, pages)."""
    items: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    request = service.events().list(**kwargs)
    while request is not None:
        page = request.execute()
        pages.append(page)
        items.extend(page.get("items", []))
        request = service.events().list_next(request, page)
    return items, pages


class Receiver:
    """Records the headers of every POST it receives (a stand-in for the app's webhook endpoint)."""

    def __init__(self) -> None:
        self.received: list[dict[str, str]] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver._cond:
                    receiver.received.append(
                        {**{k: v for k, v in self.headers.items()}, "_body": body.decode()}
                    )
                    receiver._cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, str]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self.received)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
