from sunny_pipelines.partitions import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    TRIGGER_TAG,
    plan_user_ranges,
    range_run_requests,
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
