"""The health decisions on data, without Dagster or a database: who is stale, the percentiles,
reasons, stuck inbox rows, missing and overdue channels."""

from datetime import UTC, datetime, timedelta

from sunny_pipelines.health.decisions import (
    ChannelState,
    InboxRowState,
    SyncRecord,
    channel_report,
    failure_reason,
    freshness,
    lag_summary,
    lags,
    percentile,
    reasons,
    stuck_pending,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def record(user: str, synced_minutes_ago: float | None, interval_minutes: int = 30, **kw) -> SyncRecord:
    return SyncRecord(
        user_id=user,
        service="calendar",
        interval_seconds=interval_minutes * 60,
        last_synced_at=None if synced_minutes_ago is None else NOW - timedelta(minutes=synced_minutes_ago),
        connected_at=kw.pop("connected_at", NOW - timedelta(days=1)),
        **kw,
    )


def test_a_user_is_stale_past_twice_their_interval_and_a_never_synced_one_from_the_grant():
    found = {
        lag.user_id: lag
        for lag in lags(
            [
                record("fresh", 10),
                record("edge", 60),  # exactly twice: not yet
                record("late", 61),
                record("tuned", 61, interval_minutes=360),  # a quiet user's long interval
                record("never", None),  # connected a day ago, never synced
                record("new", None, connected_at=NOW - timedelta(minutes=5)),
            ],
            NOW,
        )
    }
    assert {user for user, lag in found.items() if lag.stale} == {"late", "never"}
    assert found["never"].never_synced and found["never"].lag_seconds == 86400


def test_freshness_fails_only_above_the_allowed_share_and_lists_the_worst_first():
    fleet = lags([record(f"u{i}", 10) for i in range(18)] + [record("a", 61), record("b", 600)], NOW)
    result = freshness("calendar", fleet, max_stale_share=0.05)
    assert (result.users, len(result.stale), result.share) == (20, 2, 0.1)
    assert not result.passed
    assert [lag.user_id for lag in result.stale] == ["b", "a"]
    assert freshness("calendar", fleet, max_stale_share=0.1).passed
    assert freshness("calendar", [], max_stale_share=0.0).passed


def test_percentiles_interpolate_and_summarize_the_lag():
    assert percentile([], 0.5) == 0.0
    assert percentile([10.0], 0.95) == 10.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    fleet = lags([record(f"u{i}", i + 1) for i in range(100)], NOW)
    assert lag_summary(fleet) == {"p50": 3030.0, "p95": 5703.0, "max": 6000.0}


def test_failure_reasons_group_by_the_error_kind():
    assert failure_reason("SyncLockBusy: user u1 calendar held for 120 s") == "SyncLockBusy"
    assert failure_reason(None) == "unknown"
    assert reasons(["HttpError 500: a", "HttpError 500: b", "Boom: c", ""]) == {
        "HttpError 500": 2,
        "Boom": 1,
        "unknown": 1,
    }


def test_pending_rows_older_than_the_limit_are_stuck():
    def row(i: int, minutes: float, status: str = "pending") -> InboxRowState:
        return InboxRowState(i, "google_calendar", "u1", status, NOW - timedelta(minutes=minutes), 0, None)

    stuck = stuck_pending([row(1, 1), row(2, 9), row(3, 30, "done"), row(4, 6)], NOW, timedelta(minutes=5))
    assert [r.id for r in stuck] == [2, 4]


def test_channels_missing_expired_or_left_past_their_renewal_are_reported():
    margin, every = timedelta(hours=26), timedelta(hours=6)
    channels = [
        ChannelState("ok", "calendar_events", NOW + timedelta(days=5)),
        ChannelState("ok", "calendar_list", NOW + timedelta(days=5)),
        ChannelState("margin", "calendar_events", NOW + timedelta(hours=25)),  # the next renewal takes it
        ChannelState("margin", "calendar_list", NOW + timedelta(days=5)),
        ChannelState("overdue", "calendar_events", NOW + timedelta(hours=10)),  # should be renewed by now
        ChannelState("overdue", "calendar_list", NOW + timedelta(days=5)),
        ChannelState("expired", "calendar_events", NOW - timedelta(minutes=1)),  # still recorded active
        ChannelState("expired", "calendar_list", NOW + timedelta(days=5)),
        ChannelState("half", "calendar_list", NOW + timedelta(days=5)),
        ChannelState("gone", "calendar_events", NOW + timedelta(hours=1)),  # not synced: not counted
    ]
    kinds = ("calendar_events", "calendar_list")
    report = channel_report(
        ["ok", "margin", "overdue", "expired", "half", "none"], channels, kinds, NOW, margin, every
    )
    assert report.users == 6
    assert report.missing == {
        "expired": ["calendar_events"],
        "half": ["calendar_events"],
        "none": ["calendar_events", "calendar_list"],
    }
    assert [c.user_id for c in report.expiring] == ["overdue", "margin"]
    assert [c.user_id for c in report.overdue] == ["overdue"]
    assert not report.passed
    healthy = channel_report(["ok", "margin"], channels, kinds, NOW, margin, every)
    assert healthy.passed and len(healthy.expiring) == 1
