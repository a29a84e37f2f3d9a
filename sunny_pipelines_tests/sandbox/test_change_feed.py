"""The core change-feed / sync-token helper that Calendar uses (and Drive and Gmail will)."""

from __future__ import annotations

import pytest

from sunny_pipelines.sandbox.core.change_feed import ChangeFeed, FeedTokenInvalid
from sunny_pipelines.sandbox.core.common import TokenCodec


class Gone(Exception):
    pass


def make_feed(codec: TokenCodec | None = None, **kwargs) -> ChangeFeed:
    return ChangeFeed("things", "feed-1", codec or TokenCodec(), **kwargs)


def test_sequence_increases_and_tokens_name_positions() -> None:
    feed = make_feed()
    assert feed.seq == 0 and feed.next_seq == 1
    assert [feed.advance() for _ in range(3)] == [1, 2, 3]
    token = feed.token()
    assert feed.position(token) == 3
    assert feed.position(feed.token(at=1)) == 1
    feed.advance()
    assert feed.position(token) == 3  # a token keeps naming its position while the feed moves on
    assert "3" not in token or token != "3"  # opaque, not the bare number


def test_changes_since_a_position_and_up_to_a_snapshot() -> None:
    feed = make_feed()
    items = [("a", feed.advance()), ("b", feed.advance()), ("c", feed.advance())]
    since = feed.position(feed.token(at=1))
    assert feed.changes_since(items, since, lambda i: i[1]) == [("b", 2), ("c", 3)]
    assert feed.changes_since(items, since, lambda i: i[1], snapshot=2) == [("b", 2)]
    assert feed.changes_since(items, 3, lambda i: i[1]) == []


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        "",
        TokenCodec().encode({"feed": "things", "id": "feed-1", "seq": 1, "epoch": 0}),  # other process
    ],
)
def test_malformed_or_foreign_tokens_get_the_expired_answer(token: str) -> None:
    feed = make_feed()
    feed.advance()
    with pytest.raises(FeedTokenInvalid):
        feed.position(token)


def test_tokens_of_another_feed_or_from_the_future_are_refused() -> None:
    codec = TokenCodec()
    feed, other_id, other_kind = (
        make_feed(codec),
        ChangeFeed("things", "feed-2", codec),
        ChangeFeed("others", "feed-1", codec),
    )
    for f in (feed, other_id, other_kind):
        f.advance()
    with pytest.raises(FeedTokenInvalid):
        feed.position(other_id.token())
    with pytest.raises(FeedTokenInvalid):
        feed.position(other_kind.token())
    with pytest.raises(FeedTokenInvalid):
        feed.position(feed.token(at=5))


def test_invalidate_expires_every_outstanding_token_with_the_service_answer() -> None:
    feed = make_feed(expired=Gone)
    feed.advance()
    old = feed.token()
    epoch = feed.epoch
    feed.invalidate()
    with pytest.raises(Gone):
        feed.position(old)
    with pytest.raises(Gone):
        feed.require_epoch(epoch)
    feed.require_epoch(feed.epoch)
    assert feed.position(feed.token()) == 1  # new tokens work again


def test_calendar_sync_tokens_come_from_the_calendar_feed(sandbox) -> None:
    user = sandbox.world.list_users()[0]
    calendar = sandbox.world.calendar.calendars[user["email"]]
    assert isinstance(calendar.feed, ChangeFeed) and calendar.feed.kind == "calendar-events"
    first = sandbox.world.calendar.list_events(sandbox.world.get_user(user["email"]), "primary", {})
    assert calendar.feed.position(first["nextSyncToken"]) == calendar.seq
    before = calendar.seq
    sandbox.world.calendar.insert_event(
        sandbox.world.get_user(user["email"]),
        "primary",
        {
            "summary": "feed test",
            "start": {"dateTime": "2026-12-01T10:00:00Z"},
            "end": {"dateTime": "2026-12-01T11:00:00Z"},
        },
    )
    assert calendar.seq == before + 1
    changed = sandbox.world.calendar.list_events(
        sandbox.world.get_user(user["email"]), "primary", {"syncToken": first["nextSyncToken"]}
    )
    assert [e["summary"] for e in changed["items"]] == ["feed test"]
