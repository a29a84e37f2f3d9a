"""Google push channels (`watch` / `channels.stop`): the registry and what a change notifies.

A service declares what a channel can watch (`WatchKind`: a name such as "calendar-events" and
the channel lifetimes Google applies to it); its `watch` handlers resolve a `WatchTarget` (one
watched collection) and call `create`; when the collection changes the service calls
`notify(kind, name)`, and every live channel on it gets an `exists` notification, delivered in the
background by the `Notifier`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sunny_pipelines.sandbox.core.clock import Clock
from sunny_pipelines.sandbox.core.common import ApiError, bad_request, not_found
from sunny_pipelines.sandbox.core.notifications import Notifier

DAY = 86400


@dataclass(frozen=True)
class WatchKind:
    """Something a channel can watch, as a service registers it."""

    kind: str  # e.g. "calendar-events"
    default_ttl_seconds: int = 7 * DAY  # lifetime when the watch request names none
    max_ttl_seconds: int = 30 * DAY  # Google clamps longer requests to this


@dataclass(frozen=True)
class WatchTarget:
    """One watched collection: its kind, its name within the kind, and what Google reports for it."""

    kind: str
    name: str  # e.g. the calendar id, or the user id for a calendar list
    resource_id: str
    resource_uri: str

    @property
    def resource_key(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass
class Channel:
    id: str
    target: WatchTarget
    address: str
    token: str | None
    expiration_ms: int
    user_id: str
    params: dict[str, Any] = field(default_factory=dict)
    stopped: bool = False
    message_number: int = 0

    @property
    def resource_id(self) -> str:
        return self.target.resource_id

    @property
    def resource_uri(self) -> str:
        return self.target.resource_uri

    @property
    def resource_key(self) -> str:
        return self.target.resource_key


class ChannelRegistry:
    def __init__(self, clock: Clock, lock: threading.RLock | None = None) -> None:
        self.clock = clock
        self.lock = lock or threading.RLock()
        self.kinds: dict[str, WatchKind] = {}
        self.channels: dict[str, Channel] = {}  # by channel id
        self.notification_drop_rate = 0.0
        self.delivered: list[dict[str, Any]] = []
        self.dropped = 0
        self.notifier = Notifier(self, clock)

    def register_kind(self, kind: WatchKind) -> None:
        if kind.kind in self.kinds:
            raise ValueError(f"watch kind registered twice: {kind.kind}")
        self.kinds[kind.kind] = kind

    def create(self, user_id: str, body: dict[str, Any], target: WatchTarget) -> dict[str, Any]:
        """A `watch` call: validate the channel body, register it, and queue its `sync` notification."""
        kind = self.kinds.get(target.kind)
        if kind is None:
            raise ValueError(f"unregistered watch kind {target.kind!r}")
        channel_id = body.get("id")
        address = body.get("address")
        if not channel_id or not isinstance(channel_id, str):
            raise ApiError(400, "required", "Required channel id")
        if body.get("type") not in ("web_hook", "webhook"):
            raise bad_request(f"Invalid value for: type ({body.get('type')!r})")
        if not address or not isinstance(address, str) or not address.startswith(("http://", "https://")):
            raise bad_request("Invalid value for: address", reason="invalidAddress")
        now_ms = int(self.clock.now() * 1000)
        params = body.get("params") or {}
        expiration = now_ms + kind.default_ttl_seconds * 1000
        try:
            if body.get("expiration") is not None:
                expiration = int(body["expiration"])
            elif params.get("ttl") is not None:
                expiration = now_ms + int(params["ttl"]) * 1000
        except (TypeError, ValueError):
            raise bad_request("Invalid value for: expiration") from None
        if expiration <= now_ms:
            raise bad_request("Invalid value for: expiration (in the past)")
        expiration = min(expiration, now_ms + kind.max_ttl_seconds * 1000)  # Google clamps
        with self.lock:
            if channel_id in self.channels:
                raise bad_request(f"Channel id {channel_id} not unique", reason="channelIdNotUnique")
            channel = Channel(channel_id, target, address, body.get("token"), expiration, user_id, params)
            self.channels[channel_id] = channel
            self._send(channel, "sync")
        out = {
            "kind": "api#channel",
            "id": channel_id,
            "resourceId": target.resource_id,
            "resourceUri": target.resource_uri,
        }
        if channel.token is not None:
            out["token"] = channel.token
        out["expiration"] = str(expiration)
        return out

    def stop(self, user_id: str, body: dict[str, Any]) -> None:
        with self.lock:
            channel = self.channels.get(body.get("id") or "")
            if (
                channel is None
                or channel.stopped
                or channel.user_id != user_id
                or (body.get("resourceId") and body["resourceId"] != channel.resource_id)
            ):
                raise not_found(f"Channel '{body.get('id')}' not found for project 'sunny-sandbox'")
            channel.stopped = True

    def live(self, resource_key: str | None = None) -> list[Channel]:
        with self.lock:
            now_ms = self.clock.now() * 1000
            return [
                c
                for c in self.channels.values()
                if not c.stopped
                and c.expiration_ms > now_ms
                and (resource_key is None or c.resource_key == resource_key)
            ]

    def notify(self, kind: str, name: str, state: str = "exists") -> None:
        """A watched collection changed: queue a notification (`X-Goog-Resource-State: state`; Calendar
        says `exists`, Drive's changes feed `change`) on each of its live channels."""
        with self.lock:
            for channel in self.live(f"{kind}:{name}"):
                self._send(channel, state)

    def _send(self, channel: Channel, state: str) -> None:
        # Message numbers are assigned here, under the lock, so they increase per channel in send order.
        channel.message_number += 1
        self.notifier.enqueue(channel, state, channel.message_number)

    def set_drop_rate(self, fraction: float) -> None:
        if not 0.0 <= float(fraction) <= 1.0:
            raise ValueError("drop rate must be between 0 and 1")
        with self.lock:
            self.notification_drop_rate = float(fraction)

    def record(self, record: dict[str, Any], dropped: bool = False) -> None:
        with self.lock:
            if dropped:
                self.dropped += 1
            else:
                self.delivered.append(record)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        return self.notifier.wait_idle(timeout)

    def close(self) -> None:
        self.notifier.shutdown()
