"""Folding Gmail history records into what changed, as a plain function."""

from sunny_pipelines.gmail.sync import replay_history


def added(mid: str, labels: list[str]) -> dict:
    return {"messagesAdded": [{"message": {"id": mid, "threadId": "t", "labelIds": labels}}]}


def relabelled(kind: str, mid: str, labels: list[str], delta: list[str]) -> dict:
    return {kind: [{"message": {"id": mid, "threadId": "t", "labelIds": labels}, "labelIds": delta}]}


def deleted(mid: str) -> dict:
    return {"messagesDeleted": [{"message": {"id": mid, "threadId": "t"}}]}


def test_the_last_record_on_a_message_decides_its_labels():
    records = [
        added("m1", ["INBOX", "UNREAD"]),
        relabelled("labelsRemoved", "m1", ["INBOX"], ["UNREAD"]),
        relabelled("labelsAdded", "m1", ["INBOX", "STARRED"], ["STARRED"]),
        relabelled("labelsAdded", "old", ["INBOX", "TRASH"], ["TRASH"]),
    ]
    new, gone, labels = replay_history(records)
    assert new == ["m1"] and gone == set()
    assert labels == {"m1": ["INBOX", "STARRED"], "old": ["INBOX", "TRASH"]}


def test_a_message_added_then_deleted_is_only_deleted_and_its_later_labels_are_ignored():
    records = [
        added("m1", ["INBOX"]),
        deleted("m1"),
        relabelled("labelsAdded", "m1", ["INBOX", "STARRED"], ["STARRED"]),
        deleted("known"),
    ]
    new, gone, labels = replay_history(records)
    assert new == [] and gone == {"m1", "known"} and labels == {}


def test_no_records_means_no_change():
    assert replay_history([]) == ([], set(), {})
