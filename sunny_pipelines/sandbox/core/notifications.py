"""Background delivery of Google-style push channel notifications.

Deliveries run on a small thread pool, never inside the API request that caused them, so the API
answers fast. Each channel's notifications are delivered one at a time in message-number order
(`sync` first), while different channels proceed in parallel.
"""

from __future__ import annotations

import http.client
import logging
import random
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sunny_pipelines.sandbox.core.common import http_post, rfc1123

if TYPE_CHECKING:
    from sunny_pipelines.sandbox.core.channels import Channel, ChannelRegistry
    from sunny_pipelines.sandbox.core.clock import Clock

log = logging.getLogger(__name__)

USER_AGENT = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"


@dataclass(frozen=True)
class Delivery:
    channel_id: str
    user_id: str
    address: str
    headers: dict[str, str]
    state: str
    message_number: int


def channel_headers(channel: Channel, state: str, message_number: int) -> dict[str, str]:
    headers = {"X-Goog-Channel-ID": channel.id}
    if channel.token is not None:
        headers["X-Goog-Channel-Token"] = channel.token
    headers.update(
        {
            "X-Goog-Channel-Expiration": rfc1123(channel.expiration_ms / 1000),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-URI": channel.resource_uri,
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(message_number),
        }
    )
    return headers


class Notifier:
    def __init__(
        self, registry: ChannelRegistry, clock: Clock, max_workers: int = 8, timeout: float = 5.0
    ) -> None:
        self._registry = registry
        self._clock = clock
        self._max_workers = max_workers
        self.timeout = timeout
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queues: dict[str, deque[Delivery]] = {}
        self._active: set[str] = set()
        self._pending = 0
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self._rng = random.Random()

    def enqueue(self, channel: Channel, state: str, message_number: int) -> None:
        job = Delivery(
            channel.id,
            channel.user_id,
            channel.address,
            channel_headers(channel, state, message_number),
            state,
            message_number,
        )
        with self._lock:
            if self._closed:
                return
            self._queues.setdefault(channel.id, deque()).append(job)
            self._pending += 1
            if channel.id not in self._active:
                self._active.add(channel.id)
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        self._max_workers, thread_name_prefix="sandbox-notify"
                    )
                self._executor.submit(self._drain, channel.id)

    def _drain(self, channel_id: str) -> None:
        while True:
            with self._lock:
                queue = self._queues.get(channel_id)
                if not queue or self._closed:
                    self._active.discard(channel_id)
                    self._queues.pop(channel_id, None)
                    return
                job = queue.popleft()
            try:
                self._deliver(job)
            except Exception:  # a bug here must not kill the worker and strand the queue
                log.exception("notification delivery crashed")
            finally:
                with self._lock:
                    self._pending = max(self._pending - 1, 0)
                    if self._pending == 0:
                        self._idle.notify_all()

    def _deliver(self, job: Delivery) -> None:
        record: dict[str, Any] = {
            "channel_id": job.channel_id,
            "user_id": job.user_id,
            "address": job.address,
            "resource_id": job.headers["X-Goog-Resource-ID"],
            "resource_state": job.state,
            "message_number": job.message_number,
            "headers": job.headers,
            "status": None,
            "error": None,
            "at": self._clock.now(),
        }
        if self._rng.random() < self._registry.notification_drop_rate:
            self._registry.record(record, dropped=True)
            return
        try:
            record["status"] = http_post(
                job.address, b"", {**job.headers, "User-Agent": USER_AGENT}, self.timeout
            )
        except (OSError, ValueError, http.client.HTTPException) as exc:
            record["error"] = str(exc) or type(exc).__name__
            log.warning(
                "notification %s#%d to %s failed: %s", job.channel_id, job.message_number, job.address, exc
            )
        else:
            if not 200 <= record["status"] < 300:
                log.warning(
                    "notification %s#%d to %s answered %d",
                    job.channel_id,
                    job.message_number,
                    job.address,
                    record["status"],
                )
        self._registry.record(record)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        with self._lock:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
            self._pending = 0
            self._queues.clear()
            self._idle.notify_all()
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
