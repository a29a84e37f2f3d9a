"""Attendee, the meeting-bot API: `Authorization: Token <key>`, JSON over HTTP.

Retries 429 and 5xx with backoff, honouring `Retry-After`. A create is never retried after a
timeout or a 5xx: Attendee may have made the bot, and the caller looks it up by its
`deduplication_key` instead (a retried create would be refused with 409 anyway).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import dagster as dg
import requests

# Longest wait honoured from a Retry-After header: past it, the run fails the user and retries later.
MAX_RETRY_AFTER_SECONDS = 30.0


class AttendeeError(Exception):
    """Attendee refused or failed a request (after retries): its status and message."""

    def __init__(self, method: str, path: str, status: int | None, message: str) -> None:
        super().__init__(f"Attendee {method} {path}: {status or 'no answer'}: {message[:500]}")
        self.status = status
        self.message = message


def _retry_after(response: requests.Response, attempt: int) -> float:
    header = response.headers.get("Retry-After")
    try:
        wait = float(header) if header is not None else 0.5 * 2**attempt
    except ValueError:
        wait = 0.5 * 2**attempt
    return min(max(wait, 0.0), MAX_RETRY_AFTER_SECONDS)


class AttendeeClient:
    """One caller's access to Attendee (one thread at a time)."""

    def __init__(self, base_url: str, api_key: str, timeout_seconds: float, max_retries: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.max_retries = max_retries
        self.calls = 0
        self._session = requests.Session()
        self._session.headers.update(
            {"Authorization": f"Token {api_key}", "Content-Type": "application/json"}
        )

    def request(
        self, method: str, path: str, *, body: Any = None, params: Any = None, retry: bool = True
    ) -> Any:
        url = path if path.startswith("http") else self.base_url + path
        attempt = 0
        while True:
            self.calls += 1
            try:
                response = self._session.request(
                    method, url, json=body, params=params, timeout=self.timeout_seconds
                )
            except requests.RequestException as exc:
                if retry and attempt < self.max_retries and not isinstance(exc, requests.Timeout):
                    time.sleep(0.5 * 2**attempt)
                    attempt += 1
                    continue
                raise AttendeeError(method, path, None, f"{type(exc).__name__}: {exc}") from exc
            status = response.status_code
            retryable = status == 429 or (status >= 500 and retry)
            if retryable and attempt < self.max_retries:
                time.sleep(_retry_after(response, attempt))
                attempt += 1
                continue
            if status >= 400:
                raise AttendeeError(method, path, status, response.text)
            return response.json() if response.content else None

    def bots_with_key(self, deduplication_key: str) -> list[dict[str, Any]]:
        """Every bot Attendee has under this deduplication key (all pages)."""
        return list(self._pages("/api/v1/bots", {"deduplication_key": deduplication_key}))

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        page = self.request("GET", path, params=params)
        while True:
            yield from page.get("results", [])
            if not page.get("next"):
                return
            page = self.request("GET", page["next"])

    def create_bot(
        self,
        *,
        meeting_url: str,
        bot_name: str,
        join_at: datetime,
        deduplication_key: str,
        metadata: dict[str, str],
    ) -> dict[str, Any]:
        body = {
            "meeting_url": meeting_url,
            "bot_name": bot_name,
            "join_at": join_at.isoformat(),
            "deduplication_key": deduplication_key,
            "metadata": metadata,
        }
        # Not retried on a 5xx or a timeout: the bot may exist (see the module docstring).
        return self.request("POST", "/api/v1/bots", body=body, retry=False)

    def get_bot(self, bot_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/bots/{bot_id}")

    def move_bot(self, bot_id: str, join_at: datetime) -> dict[str, Any]:
        return self.request("PATCH", f"/api/v1/bots/{bot_id}", body={"join_at": join_at.isoformat()})

    def delete_bot(self, bot_id: str) -> None:
        self.request("DELETE", f"/api/v1/bots/{bot_id}")

    def transcript(self, bot_id: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/api/v1/bots/{bot_id}/transcript") or []

    def delete_data(self, bot_id: str) -> None:
        self.request("POST", f"/api/v1/bots/{bot_id}/delete_data")


class AttendeeResource(dg.ConfigurableResource):
    """Where Attendee is (the sandbox locally) and the project's API key."""

    base_url: str = "http://127.0.0.1:8765"
    api_key: str = "sunny-local-attendee-key"
    timeout_seconds: float = 20.0
    max_retries: int = 4

    def client(self) -> AttendeeClient:
        return AttendeeClient(self.base_url, self.api_key, self.timeout_seconds, self.max_retries)
