"""A tiny Pub/Sub: topics are implicit, push subscriptions are registered, published messages are
pushed in the background.

This is what a Gmail `users.watch` publishes into. In Google Cloud one creates a push
subscription on the watch's topic (`gcloud pubsub subscriptions create NAME --topic T
--push-endpoint URL --push-auth-token-audience AUD`); here `create_subscription` (or
`World.create_push_subscription`, the admin route `POST /sandbox/pubsub/subscriptions`, the CLI's
`--pubsub-subscription`) does the same. `publish` returns at once: every subscription of the topic
gets a signed push (`World.pubsub_push`) from a worker thread, never from the request that caused
it. A message to a topic without subscriptions is dropped, as Pub/Sub drops it.

Pushes answered with a non-2xx status (or not answered) are retried a few times with a short
backoff, as Pub/Sub redelivers; each delivery is recorded once, with its attempts.
"""

from __future__ import annotations

import http.client
import logging
import random
import re
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger(__name__)

TOPIC_RE = re.compile(r"^projects/([^/\s]+)/topics/([^/\s]+)$")

# push(endpoint, audience, data, attributes, subscription) -> HTTP status
PushFunction = Callable[[str, str, Any, "dict[str, str] | None", str], int]


def parse_topic(topic: str) -> tuple[str, str]:
    """(project, topic id) of `projects/<project>/topics/<topic>`; ValueError otherwise."""
    match = TOPIC_RE.match(topic or "")
    if not match:
        raise ValueError(f"invalid topic name {topic!r}; expected projects/<project>/topics/<topic>")
    return match.group(1), match.group(2)


@dataclass(frozen=True)
class PushSubscription:
    name: str  # projects/<project>/subscriptions/<id>
    topic: str
    push_endpoint: str
    audience: str  # the `aud` of the OIDC token in each push


class PubSub:
    """Push subscriptions by topic, and background delivery of what is published to them."""

    def __init__(
        self,
        push: PushFunction,
        drop_rate: Callable[[], float] = lambda: 0.0,
        max_workers: int = 4,
        max_attempts: int = 3,
        backoff_seconds: float = 0.2,
    ) -> None:
        self._push = push
        self._drop_rate = drop_rate
        self._max_workers = max_workers
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._subscriptions: dict[str, PushSubscription] = {}  # by name
        self._pending = 0
        self._executor: ThreadPoolExecutor | None = None
        self._closed = threading.Event()
        self._rng = random.Random()
        self.published: list[dict[str, Any]] = []  # every published message, with its topic
        self.delivered: list[dict[str, Any]] = []  # one record per push (after its last attempt)
        self.dropped = 0

    # -- subscriptions ----------------------------------------------------------------------------------

    def create_subscription(
        self, topic: str, push_endpoint: str, audience: str | None = None, name: str | None = None
    ) -> PushSubscription:
        """Register a push subscription on `topic`; the audience defaults to the endpoint."""
        project, topic_id = parse_topic(topic)
        if not push_endpoint.startswith(("http://", "https://")):
            raise ValueError(f"invalid push endpoint {push_endpoint!r}")
        with self._lock:
            if name is None:
                name = f"projects/{project}/subscriptions/{topic_id}-push-{len(self._subscriptions) + 1}"
            elif "/" not in name:
                name = f"projects/{project}/subscriptions/{name}"
            if name in self._subscriptions:
                raise ValueError(f"subscription exists: {name}")
            sub = PushSubscription(name, topic, push_endpoint, audience or push_endpoint)
            self._subscriptions[name] = sub
            return sub

    def delete_subscription(self, name: str) -> bool:
        with self._lock:
            return self._subscriptions.pop(name, None) is not None

    def subscriptions(self, topic: str | None = None) -> list[PushSubscription]:
        with self._lock:
            return [s for s in self._subscriptions.values() if topic is None or s.topic == topic]

    # -- publishing ---------------------------------------------------------------------------------------

    def publish(self, topic: str, data: Any, attributes: dict[str, str] | None = None) -> str:
        """Queue `data` (JSON) for every push subscription of `topic`; the message id. Never blocks."""
        message_id = str(secrets.randbelow(10**16))
        with self._lock:
            if self._closed.is_set():
                return message_id
            self.published.append({"topic": topic, "message_id": message_id, "data": data})
            for sub in self._subscriptions.values():
                if sub.topic != topic:
                    continue
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        self._max_workers, thread_name_prefix="sandbox-pubsub"
                    )
                self._pending += 1
                self._executor.submit(self._deliver, sub, message_id, data, attributes)
        return message_id

    def _deliver(
        self, sub: PushSubscription, message_id: str, data: Any, attributes: dict[str, str] | None
    ) -> None:
        record: dict[str, Any] = {
            **asdict(sub),
            "message_id": message_id,
            "data": data,
            "status": None,
            "error": None,
            "attempts": 0,
        }
        try:
            if self._rng.random() < self._drop_rate():
                with self._lock:
                    self.dropped += 1
                return
            for attempt in range(1, self.max_attempts + 1):
                record["attempts"] = attempt
                try:
                    record["status"] = self._push(sub.push_endpoint, sub.audience, data, attributes, sub.name)
                    record["error"] = None
                except (OSError, ValueError, http.client.HTTPException) as exc:
                    record["status"], record["error"] = None, str(exc) or type(exc).__name__
                if record["status"] is not None and 200 <= record["status"] < 300:
                    break
                log.warning(
                    "pubsub push %s to %s: %s (attempt %d)",
                    message_id,
                    sub.push_endpoint,
                    record["error"] or record["status"],
                    attempt,
                )
                # Pub/Sub redelivers with backoff; the wait ends early when the sandbox stops.
                if attempt < self.max_attempts and self._closed.wait(
                    self.backoff_seconds * 2 ** (attempt - 1)
                ):
                    break
            with self._lock:
                self.delivered.append(record)
        except Exception:  # a bug here must not strand the pending count
            log.exception("pubsub delivery crashed")
        finally:
            with self._lock:
                self._pending = max(self._pending - 1, 0)
                if self._pending == 0:
                    self._idle.notify_all()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until every queued push has been delivered (or dropped); False on timeout."""
        with self._lock:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            executor, self._executor = self._executor, None
            self._pending = 0
            self._idle.notify_all()
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
