from sunny_pipelines.partitions import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    TRIGGER_TAG,
    plan_user_ranges,
    range_run_requests,
    run_span,
)
from sunny_pipelines.vocabulary import Trigger

KEYS = [f"u{i:03d}" for i in range(10)]


def test_no_selection_no_ranges():
    assert plan_user_ranges(KEYS, set()) == []


def test_ranges_start_and_end_on_selected_users():
    assert plan_user_ranges(KEYS, {"u002", "u003", "u007"}, max_users=50) == [("u002", "u007")]


def test_ranges_span_at_most_max_users_partitions():
    ranges = plan_user_ranges(KEYS, set(KEYS), max_users=4)
    assert ranges == [("u000", "u003"), ("u004", "u007"), ("u008", "u009")]


def test_sparse_selection_splits_when_span_exceeds_max():
    assert plan_user_ranges(KEYS, {"u000", "u005", "u009"}, max_users=5) == [
        ("u000", "u000"),
        ("u005", "u009"),
    ]


def test_every_selected_user_is_covered_once():
    selected = {k for i, k in enumerate(KEYS) if i % 3 == 0}
    covered = []
    for start, end in plan_user_ranges(KEYS, selected, max_users=3):
        span = KEYS[KEYS.index(start) : KEYS.index(end) + 1]
        assert len(span) <= 3
        covered.extend(k for k in span if k in selected)
    assert sorted(covered) == sorted(selected)


def test_run_requests_carry_range_and_trigger_tags():
    [request] = range_run_requests(KEYS, {"u001", "u004"}, run_key_prefix="tick", trigger=Trigger.SCHEDULE)
    assert request.tags[RANGE_START_TAG] == "u001"
    assert request.tags[RANGE_END_TAG] == "u004"
    assert request.tags[TRIGGER_TAG] == "schedule"
    assert request.run_key == "tick:u001..u004"


FLEET = [f"u{i:05d}" for i in range(10_000)]


def test_a_large_selection_is_covered_by_about_max_runs_ranges():
    # 10,000 due users in 50-user runs would be 200 runs per tick; spans grow instead.
    ranges = plan_user_ranges(FLEET, set(FLEET), max_users=50, max_runs=8)
    assert len(ranges) == 10  # spans are capped at USERS_PER_RUN_LIMIT (1,000)
    assert run_span(FLEET, set(FLEET), 50, 8) == 1000


def test_a_scattered_selection_is_not_split_by_span():
    every_sixth = {k for i, k in enumerate(FLEET) if i % 6 == 0}
    assert len(plan_user_ranges(FLEET, every_sixth, max_users=50)) == 186  # 48-partition spans
    assert len(plan_user_ranges(FLEET, every_sixth, max_users=50, max_runs=8)) == 10


def test_a_small_selection_keeps_the_batch_size():
    assert run_span(KEYS, {"u001", "u008"}, 4, 8) == 4
    assert plan_user_ranges(KEYS, set(KEYS), max_users=4, max_runs=8) == [
        ("u000", "u003"),
        ("u004", "u007"),
        ("u008", "u009"),
    ]


def test_run_requests_are_bounded_per_tick():
    requests = range_run_requests(FLEET, set(FLEET), run_key_prefix="tick", trigger=Trigger.SCHEDULE)
    assert len(requests) == 10
