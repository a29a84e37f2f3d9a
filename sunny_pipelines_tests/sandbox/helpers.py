"""Helpers for the sandbox's tests: listing every page, and a tiny HTTP receiver that records push
notifications. Google clients come from `sunny_pipelines_tests.google_clients`."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


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


ATTENDEE_SPEC_PATH = Path(__file__).with_name("attendee-openapi.yml")


def attendee_openapi(base_url: str) -> Any:
    """Attendee's OpenAPI document (`attendee-openapi.yml`, copied from shared/reference) served
    at ``base_url``, ready to validate requests and responses."""
    import yaml
    from openapi_core import Config, OpenAPI

    spec = yaml.safe_load(ATTENDEE_SPEC_PATH.read_text())
    spec["servers"] = [{"url": base_url}]
    # The document itself does not pass openapi-spec-validator (3.1-style `type: [string, null]`
    # in a 3.0.3 document), so only requests and responses are validated, not the document.
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))
