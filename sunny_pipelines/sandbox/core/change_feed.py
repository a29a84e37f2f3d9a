"""One change-feed / sync-token helper for every emulated service.

Google's incremental APIs all work the same way underneath: each change to a collection takes the
next value of that collection's sequence, and a token the client keeps names a position in it.
Calendar calls it a `syncToken`, Drive a `changes` page token, Gmail a `historyId`. A `ChangeFeed`
is that sequence for one collection (one calendar's events, one user's calendar list, one Drive,
one mailbox):

- `advance()` records a change and returns its sequence number (monotonically increasing);
- `token(at)` is an opaque token naming a sequence number of this feed;
- `position(token)` reads a token back, and raises the service's "expired or invalid token" answer
  (Calendar: 410 fullSyncRequired; Gmail: 404; Drive: 400) when the token is malformed, names
  another feed, names the future, or predates `invalidate()`;
- `changes_since(items, since, ...)` keeps the items changed after a position (and not after a
  snapshot, so that a paged listing stays consistent while changes keep arriving).

Tokens are signed by the world's `TokenCodec`, so a token from another sandbox process is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from sunny_pipelines.sandbox.core.common import TokenCodec

T = TypeVar("T")


class FeedTokenInvalid(Exception):
    """A token that names no current position of the feed (the default 'expired' answer)."""


@dataclass
class ChangeFeed:
    kind: str  # what the feed is, e.g. "calendar-events"; a token of another kind is refused
    feed_id: str  # which one, e.g. the calendar id
    codec: TokenCodec
    expired: Callable[[], Exception] = field(default=FeedTokenInvalid)  # the service's answer
    seq: int = 0  # sequence number of the newest change
    epoch: int = 0  # bumped by invalidate(): every outstanding token becomes invalid

    def advance(self) -> int:
        """Record one change; its sequence number."""
        self.seq += 1
        return self.seq

    @property
    def next_seq(self) -> int:
        """The number the next `advance()` will return (to stamp a change before committing it)."""
        return self.seq + 1

    def token(self, at: int | None = None) -> str:
        """An opaque token naming sequence number `at` (default: now)."""
        seq = self.seq if at is None else at
        return self.codec.encode({"feed": self.kind, "id": self.feed_id, "seq": seq, "epoch": self.epoch})

    def position(self, token: str) -> int:
        """The sequence number a token names; raises `self.expired()` if it names none of this feed."""
        payload = self.codec.decode(token)
        if (
            not payload
            or payload.get("feed") != self.kind
            or payload.get("id") != self.feed_id
            or payload.get("epoch") != self.epoch
            or not isinstance(payload.get("seq"), int)
            or not 0 <= payload["seq"] <= self.seq
        ):
            raise self.expired()
        return payload["seq"]

    def require_epoch(self, epoch: object) -> None:
        """For continuation tokens (pages of an incremental listing) that recorded the epoch."""
        if epoch != self.epoch:
            raise self.expired()

    def invalidate(self) -> None:
        """Every token issued so far becomes invalid (the client must start over with a full listing)."""
        self.epoch += 1

    @staticmethod
    def changes_since(
        items: Iterable[T], since: int, seq_of: Callable[[T], int], snapshot: int | None = None
    ) -> list[T]:
        """The items whose last change is after `since` (and not after `snapshot`, if given)."""
        return [
            item for item in items if since < seq_of(item) and (snapshot is None or seq_of(item) <= snapshot)
        ]
