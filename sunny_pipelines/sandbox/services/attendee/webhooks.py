"""Attendee webhook delivery: signed POSTs sent by one background thread, in the order queued.

Never inside an API request: the request queues, this thread delivers (so a slow receiver cannot
slow the API down, as with Attendee). Each payload is signed with the project's secret exactly as
Attendee signs it (`World.attendee_emit`). A non-2xx answer or a connection error is retried a few
times with a short backoff, like Attendee's retry policy (shortened to keep tests fast). The drop
rate of the sandbox's notifications applies to these too.
"""

from __future__ import annotations

import http.client
import logging
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

RETRIES = 3
BACKOFF_SECONDS = 0.2


@dataclass(frozen=True)
class Delivery:
    url: str
    payload: dict[str, Any]


class WebhookSender:
    def __init__(
        self,
        post: Callable[[str, dict[str, Any]], int],  # (url, payload) -> status; raises on no answer
        drop_rate: Callable[[], float],
        now: Callable[[], float],
        closing: threading.Event,
    ) -> None:
        self._post = post
        self._drop_rate = drop_rate
        self._now = now
        self._closing = closing
        self._cond = threading.Condition()
        self._queue: deque[Delivery] = deque()
        self._busy = False
        self._thread: threading.Thread | None = None
        self._rng = random.Random()
        self.delivered: list[dict[str, Any]] = []  # every delivery, dropped ones included
        self.dropped = 0

    @staticmethod
    def payload(bot_id: str, metadata: Any, trigger: str, data: dict[str, Any]) -> dict[str, Any]:
        """Attendee's bot webhook body."""
        return {
            "idempotency_key": str(uuid.uuid4()),
            "bot_id": bot_id,
            "bot_metadata": metadata,
            "trigger": trigger,
            "data": data,
        }

    def enqueue(self, url: str, payload: dict[str, Any]) -> None:
        with self._cond:
            if self._closing.is_set():
                return
            self._queue.append(Delivery(url, payload))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sandbox-attendee-webhooks", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing.is_set():
                    self._cond.wait(0.5)
                if self._closing.is_set():
                    self._queue.clear()
                    self._busy = False
                    self._cond.notify_all()
                    return
                job = self._queue.popleft()
                self._busy = True
            try:
                self._deliver(job)
            except Exception:  # a bug here must not kill the thread and strand the queue
                log.exception("attendee webhook delivery crashed")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _deliver(self, job: Delivery) -> None:
        record: dict[str, Any] = {
            "url": job.url,
            "trigger": job.payload["trigger"],
            "bot_id": job.payload["bot_id"],
            "payload": job.payload,
            "status": None,
            "error": None,
            "attempts": 0,
            "dropped": False,
            "at": self._now(),
        }
        if self._rng.random() < self._drop_rate():
            record["dropped"] = True
            with self._cond:
                self.dropped += 1
                self.delivered.append(record)
            return
        for attempt in range(RETRIES + 1):
            record["attempts"] = attempt + 1
            try:
                record["status"], record["error"] = self._post(job.url, job.payload), None
            except (OSError, ValueError, http.client.HTTPException) as exc:
                record["error"] = str(exc) or type(exc).__name__
            if record["status"] is not None and 200 <= record["status"] < 300:
                break
            if attempt < RETRIES and self._closing.wait(BACKOFF_SECONDS * 2**attempt):
                break
        if record["error"] or not 200 <= (record["status"] or 0) < 300:
            log.warning("attendee webhook %s to %s failed: %s", record["trigger"], job.url, record)
        with self._cond:
            self.delivered.append(record)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)
