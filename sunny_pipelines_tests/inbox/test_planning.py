"""The inbox sensor's pure decisions: which rows need a run, and how runs are batched."""

from datetime import UTC, datetime, timedelta

from sunny_pipelines.inbox.rows import MAX_BACKOFF_SECONDS, InboxRow, backoff
from sunny_pipelines.inbox.sensors import CLAIMED_LEASE, UNCLAIMED_LEASE, needs_new_run, plan_inbox_runs
from sunny_pipelines.partitions import RANGE_END_TAG, RANGE_START_TAG, TRIGGER_TAG

JOBS = {"google_calendar": "calendar_sync"}


def plan_inbox_runs_(rows, keys, now):
    return plan_inbox_runs(rows, keys, now, JOBS)


NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


def row(row_id: int, user: str, status: str = "pending", attempts: int = 0, claimed_by=None, age=timedelta()):
    return InboxRow(
        id=row_id,
        source="google_calendar",
        user_id=user,
        channel_id="ch",
        payload={},
        status=status,
        attempts=attempts,
        claimed_by=claimed_by,
        claimed_at=NOW - age if claimed_by else None,
        received_at=NOW - age,
    )


def test_rows_of_many_users_become_few_batched_runs():
    keys = [f"u{i:03d}" for i in range(200)]
    rows = [row(i, keys[i % 200]) for i in range(1, 1001)]
    requests, new_users = plan_inbox_runs_(rows, keys, NOW)
    assert new_users == []
    assert len(requests) == 4  # 200 users, at most 50 partitions per run
    assert [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in requests][0] == ("u000", "u049")
    assert all(r.tags[TRIGGER_TAG] == "inbox" and r.job_name == "calendar_sync" for r in requests)
    # Dequeued before schedule runs (default priority 0).
    assert all(r.tags["dagster/priority"] == "10" for r in requests)


def test_run_key_names_the_newest_row_covered():
    keys = ["a", "b", "c"]
    [request] = plan_inbox_runs_([row(7, "a"), row(9, "c")], keys, NOW)[0]
    assert request.run_key.startswith("inbox:calendar_sync:9:")
    [later] = plan_inbox_runs_([row(12, "a")], keys, NOW)[0]
    assert later.run_key != request.run_key


def test_unknown_users_are_added_as_partitions():
    requests, new_users = plan_inbox_runs_([row(1, "a"), row(2, "new-user")], ["a"], NOW)
    assert new_users == ["new-user"]
    assert (requests[0].tags[RANGE_START_TAG], requests[0].tags[RANGE_END_TAG]) == ("a", "new-user")


def test_retry_of_the_same_rows_is_a_new_run_key():
    first = plan_inbox_runs_([row(5, "a", attempts=0)], ["a"], NOW)[0][0]
    retry = plan_inbox_runs_([row(5, "a", status="failed", attempts=1)], ["a"], NOW)[0][0]
    assert first.run_key != retry.run_key


def test_which_earlier_rows_need_a_new_run():
    assert needs_new_run(row(1, "a", status="failed", attempts=1), None, NOW)
    # Requested but not yet claimed: wait for the run, unless it is long overdue.
    assert not needs_new_run(row(1, "a"), None, NOW)
    assert needs_new_run(row(1, "a", age=UNCLAIMED_LEASE + timedelta(seconds=1)), None, NOW)
    # Claimed by a run that is gone (crashed, killed): run again at once.
    assert needs_new_run(row(1, "a", attempts=1, claimed_by="run-1"), False, NOW)
    assert not needs_new_run(row(1, "a", attempts=1, claimed_by="run-1"), True, NOW)
    assert needs_new_run(row(1, "a", attempts=1, claimed_by="run-1", age=CLAIMED_LEASE * 2), True, NOW)


def test_backoff_grows_and_is_capped():
    assert backoff(1) == timedelta(seconds=30)
    assert backoff(2) == timedelta(seconds=60)
    assert backoff(20) == timedelta(seconds=MAX_BACKOFF_SECONDS)
