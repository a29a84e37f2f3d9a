"""Gmail sync and email processing against PostgreSQL and the sandbox over HTTP, with the real
Google client."""

from __future__ import annotations

from sqlalchemy import select

from sunny_pipelines.calendar.sync import sync_user_calendars
from sunny_pipelines.db.models import CalendarEvent, Email
from sunny_pipelines.gmail.process import process_pending_emails
from sunny_pipelines.gmail.sync import sync_user_mail
from sunny_pipelines_tests.google_clients import google_client

from .helpers import raw as fixture_bytes
from .mailbox import gmail_raw, insert, plain_email, stored_email, stored_rows, truth_rows

EVERYTHING = 3650  # days: the whole seeded mailbox


def sync(google, database, user_id: str, **kwargs):
    kwargs.setdefault("full_sync_days", EVERYTHING)
    return sync_user_mail(google.session(user_id), database, user_id, **kwargs)


def make_changes(sandbox, user: dict) -> dict[str, str]:
    """Insert, import, relabel, trash and delete messages as the user; the ids touched."""
    gmail = google_client(sandbox, user, "gmail")
    messages = gmail.users().messages()
    existing = messages.list(userId="me", maxResults=3).execute()["messages"]
    inserted = insert(gmail, plain_email("grace@example.com", user["email"], "Lunch on Friday?", "Noon?"))
    imported = messages.import_(
        userId="me",
        body={
            "raw": gmail_raw(plain_email("linus@example.org", user["email"], "Patch", "v2")),
            "labelIds": ["INBOX"],
        },
    ).execute()
    messages.modify(
        userId="me", id=existing[0]["id"], body={"addLabelIds": ["STARRED"], "removeLabelIds": ["UNREAD"]}
    ).execute()
    messages.trash(userId="me", id=existing[1]["id"]).execute()
    messages.delete(userId="me", id=existing[2]["id"]).execute()
    return {
        "inserted": inserted["id"],
        "imported": imported["id"],
        "relabelled": existing[0]["id"],
        "trashed": existing[1]["id"],
        "deleted": existing[2]["id"],
    }


def test_first_sync_lists_every_page_and_equals_the_sandbox(google, database, sandbox, connected_users):
    user = connected_users[0]
    result = sync(google, database, user["id"], page_size=5)
    assert result.full_sync and result.pages > 2
    assert stored_rows(database, user["id"]) == truth_rows(sandbox, user)
    with database.begin() as conn:
        statuses = set(
            conn.execute(select(Email.processing_status).where(Email.user_id == user["id"])).scalars()
        )
    assert statuses == {"pending"}


def test_the_first_sync_is_bounded_to_the_last_days(google, database, sandbox, connected_users):
    user = connected_users[0]
    sync(google, database, user["id"], full_sync_days=7)
    stored = stored_rows(database, user["id"])
    assert stored == truth_rows(sandbox, user, days=7)
    assert len(stored) < len(truth_rows(sandbox, user))


def test_changes_reach_the_database_across_pages(google, database, sandbox, connected_users):
    user = connected_users[0]
    sync(google, database, user["id"])
    touched = make_changes(sandbox, user)

    result = sync(google, database, user["id"], page_size=2)
    assert not result.full_sync and result.pages > 2
    assert stored_rows(database, user["id"]) == truth_rows(sandbox, user)
    assert stored_email(database, user["id"], touched["deleted"]).deleted_at is not None
    assert "TRASH" in stored_email(database, user["id"], touched["trashed"]).label_ids
    relabelled = stored_email(database, user["id"], touched["relabelled"])
    assert "STARRED" in relabelled.label_ids and "UNREAD" not in relabelled.label_ids
    new = stored_email(database, user["id"], touched["inserted"])
    assert (new.subject, new._mapping["from"], new._mapping["to"]) == (
        "Lunch on Friday?",
        "grace@example.com",
        [user["email"]],
    )
    assert new.processing_status == "pending"


def test_an_unchanged_mailbox_costs_one_api_call(google, database, sandbox, connected_users):
    user = connected_users[0]
    sync(google, database, user["id"])
    result = sync(google, database, user["id"])
    assert result.api_calls == 1 and result.change_count == 0


def test_a_stale_history_id_recovers_with_the_bounded_full_sync(google, database, sandbox, connected_users):
    user = connected_users[0]
    sync(google, database, user["id"])
    touched = make_changes(sandbox, user)
    sandbox.world.inject_fault("expire_history", user_email=user["email"])

    result = sync(google, database, user["id"], page_size=7)
    assert result.history_expired and result.full_sync
    assert stored_rows(database, user["id"]) == truth_rows(sandbox, user)
    assert stored_email(database, user["id"], touched["deleted"]).deleted_at is not None
    again = sync(google, database, user["id"])
    assert not again.full_sync and again.api_calls == 1


def test_every_seeded_email_ends_processed_or_failed_and_invitations_link_to_events(
    google, database, sandbox, connected_users
):
    user = connected_users[0]
    sync_user_calendars(google.session(user["id"]), database, user["id"])
    sync(google, database, user["id"])
    result = process_pending_emails(database, user["id"])
    with database.begin() as conn:
        rows = conn.execute(select(Email.__table__).where(Email.user_id == user["id"])).all()
        uids = set(
            conn.execute(select(CalendarEvent.ical_uid).where(CalendarEvent.user_id == user["id"])).scalars()
        )
    assert {r.processing_status for r in rows} <= {"processed", "failed"}
    assert result.processed + result.failed == len(rows)
    kinds = {r.processing_kind for r in rows}
    assert {"meeting_invitation", "newsletter", "automated", "needs_classification"} <= kinds
    assert all(r.processing_reason for r in rows if r.processing_status == "processed")
    assert all(r.processing_error for r in rows if r.processing_status == "failed")
    linked = [r for r in rows if r.calendar_event_id]
    assert linked and all(r.calendar_uid in uids for r in linked)
    # Processing is done once: nothing is pending any more.
    assert process_pending_emails(database, user["id"]).processed == 0


PUT_IN_THE_MAILBOX = {
    "google_invitation.eml": ("processed", "meeting_invitation"),
    "google_reply_accepted.eml": ("processed", "meeting_reply"),
    "google_cancellation.eml": ("processed", "meeting_cancellation"),
    "newsletter.eml": ("processed", "newsletter"),
    "github_notification.eml": ("processed", "automated"),
    "personal_reply.eml": ("processed", "needs_classification"),
    "malformed_boundary_missing.eml": ("failed", None),
    "calendar_not_icalendar.eml": ("failed", None),
}


def test_real_shaped_messages_put_in_the_mailbox_end_processed_or_failed_with_their_reason(
    google, database, sandbox, connected_users
):
    user = connected_users[0]
    sync(google, database, user["id"])
    process_pending_emails(database, user["id"])
    gmail = google_client(sandbox, user, "gmail")
    ids = {name: insert(gmail, fixture_bytes(name))["id"] for name in PUT_IN_THE_MAILBOX}

    sync(google, database, user["id"])
    result = process_pending_emails(database, user["id"])
    assert result.processed + result.failed == len(PUT_IN_THE_MAILBOX)
    for name, (status, kind) in PUT_IN_THE_MAILBOX.items():
        row = stored_email(database, user["id"], ids[name])
        assert (row.processing_status, row.processing_kind) == (status, kind), name
        assert row.processed_at is not None
        if status == "failed":
            assert row.processing_error and row.processing_reason, name
        else:
            assert row.processing_reason and row.processing_error is None, name
    invitation = stored_email(database, user["id"], ids["google_invitation.eml"])
    assert invitation.calendar_method == "REQUEST" and invitation.calendar_uid


def test_a_429_and_503_burst_is_retried_and_the_result_is_exact(google, database, sandbox, connected_users):
    user = connected_users[0]
    sync(google, database, user["id"])
    make_changes(sandbox, user)
    sandbox.world.inject_fault("rate_limit", user_email=user["email"], count=2)
    sandbox.world.inject_fault("server_error", user_email=user["email"], count=1, status=503)
    sync(google, database, user["id"], page_size=3)
    assert stored_rows(database, user["id"]) == truth_rows(sandbox, user)
