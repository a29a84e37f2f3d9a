"""Drive sync against PostgreSQL and the sandbox over HTTP, with the real Google client."""

from __future__ import annotations

import hashlib

from googleapiclient.http import MediaInMemoryUpload

from sunny_pipelines.drive.sync import PAGE_SIZE, DriveSyncResult, export_texts, full_listing, sync_user_drive
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines_tests.google_clients import google_client

from .helpers import drive_truth, stored_file, stored_rows, truth_rows

DOC = "application/vnd.google-apps.document"
FOLDER = "application/vnd.google-apps.folder"


def sync(google, database, user_id: str, **kwargs):
    return sync_user_drive(google.session(user_id), database, user_id, **kwargs)


def make_changes(sandbox, user: dict) -> dict[str, str]:
    """Create, rename, move, trash, untrash and delete files as the user; the ids touched."""
    drive = google_client(sandbox, user, "drive")
    files = drive.files()
    folder = files.create(body={"name": "Board meetings", "mimeType": FOLDER}).execute()
    doc = files.create(
        body={"name": "Agenda draft", "mimeType": DOC},
        media_body=MediaInMemoryUpload(b"1. Budget\n2. Hiring plan\n", mimetype="text/plain"),
    ).execute()
    pdf = files.create(
        body={"name": "Invoice 1042.pdf", "parents": [folder["id"]]},
        media_body=MediaInMemoryUpload(b"%PDF-1.7 invoice", mimetype="application/pdf"),
    ).execute()
    files.update(fileId=doc["id"], body={"name": "Agenda: December board meeting"}).execute()
    files.update(fileId=doc["id"], addParents=folder["id"], removeParents="root").execute()
    doomed = files.create(
        body={"name": "Scratch.txt"}, media_body=MediaInMemoryUpload(b"x", mimetype="text/plain")
    ).execute()
    files.update(fileId=pdf["id"], body={"trashed": True}).execute()
    bounced = files.create(
        body={"name": "Bounced.txt"}, media_body=MediaInMemoryUpload(b"y", mimetype="text/plain")
    ).execute()
    files.update(fileId=bounced["id"], body={"trashed": True}).execute()
    files.update(fileId=bounced["id"], body={"trashed": False}).execute()
    files.delete(fileId=doomed["id"]).execute()
    # A file the last sync stored, deleted for good.
    mine = files.list(
        q=f"'me' in owners and mimeType != '{FOLDER}' and trashed = false", pageSize=1
    ).execute()
    deleted = mine["files"][0]["id"]
    files.delete(fileId=deleted).execute()
    return {
        "folder": folder["id"],
        "doc": doc["id"],
        "pdf": pdf["id"],
        "deleted": deleted,
        "never_seen": doomed["id"],
        "bounced": bounced["id"],
    }


def test_first_sync_lists_every_page_and_equals_the_sandbox(google, database, sandbox, connected_users):
    user = connected_users[0]
    truth = drive_truth(sandbox, user)
    result = sync(google, database, user["id"], page_size=3)
    assert result.full_listing and result.pages > 2
    assert stored_rows(database, user["id"]) == truth_rows(sandbox, user)
    # Docs, Sheets and Slides keep their text export (hashed whole); other files only metadata.
    assert truth["exports"] and result.exported == len(
        [f for f in truth["files"] if f["id"] in truth["exports"] and not f.get("trashed")]
    )
    for file_id, text in truth["exports"].items():
        row = stored_file(database, user["id"], file_id)
        if row.trashed:
            continue
        assert row.text_content == text.replace("\r\n", "\n").strip("\ufeff")
        assert row.content_hash == hashlib.sha256(text.encode()).hexdigest()
    binaries = [f for f in truth["files"] if f.get("md5Checksum")]
    assert binaries and all(not f["mimeType"].startswith("application/vnd.google-apps") for f in binaries)


def test_changes_reach_the_database_across_pages_and_nothing_is_forgotten(
    google, database, sandbox, connected_users
):
    user = connected_users[0]
    sync(google, database, user["id"])
    touched = make_changes(sandbox, user)

    result = sync(google, database, user["id"], page_size=2)
    assert not result.full_listing and result.pages > 2
    assert stored_rows(database, user["id"]) == truth_rows(sandbox, user)
    deleted = stored_file(database, user["id"], touched["deleted"])
    assert deleted.removed and deleted.removed_at is not None
    assert stored_file(database, user["id"], touched["never_seen"]) is None
    assert stored_file(database, user["id"], touched["pdf"]).trashed
    bounced = stored_file(database, user["id"], touched["bounced"])
    assert not bounced.trashed and not bounced.removed
    doc = stored_file(database, user["id"], touched["doc"])
    assert doc.name == "Agenda: December board meeting" and doc.parents == [touched["folder"]]
    assert doc.text_content.startswith("1. Budget")


def test_an_unchanged_drive_costs_one_api_call(google, database, sandbox, connected_users):
    user = connected_users[0]
    sync(google, database, user["id"])
    result = sync(google, database, user["id"])
    assert result.api_calls == 1 and result.change_count == 0 and result.exported == 0


def test_a_stale_page_token_recovers_with_a_full_listing_that_marks_files_gone(
    google, database, sandbox, connected_users
):
    user = connected_users[0]
    sync(google, database, user["id"])
    touched = make_changes(sandbox, user)
    sandbox.world.inject_fault("invalidate_page_tokens", user_email=user["email"])

    result = sync(google, database, user["id"], page_size=4)
    assert result.page_token_expired and result.full_listing
    assert stored_rows(database, user["id"]) == truth_rows(sandbox, user)
    assert stored_file(database, user["id"], touched["deleted"]).removed
    # The token saved by the recovery works: the next sync is incremental and costs one call.
    again = sync(google, database, user["id"])
    assert not again.full_listing and again.api_calls == 1


def test_a_failed_export_is_recorded_and_retried_by_the_next_sync(
    google, database, cipher, sandbox, connected_users
):
    user = connected_users[0]
    drive = google_client(sandbox, user, "drive")
    doc = (
        drive.files()
        .create(
            body={"name": "Proposal", "mimeType": DOC},
            media_body=MediaInMemoryUpload(b"Scope and pricing", mimetype="text/plain"),
        )
        .execute()
    )
    # The listing succeeds; the export answers 500 and no retry is allowed.
    no_retries = GoogleResource(database=database, cipher=cipher, sandbox_url=sandbox.base_url, num_retries=0)
    session = no_retries.session(user["id"])
    full_listing(session, database, user["id"], PAGE_SIZE, DriveSyncResult())
    sandbox.world.inject_fault("server_error", user_email=user["email"], count=1, status=500)
    failed = DriveSyncResult()
    export_texts(session, database, user["id"], failed, limit=500)
    assert failed.export_errors == 1
    row = stored_file(database, user["id"], doc["id"])
    assert row.export_error.startswith("HTTP 500") and row.text_content is None

    result = sync(google, database, user["id"])
    assert result.exported >= 1
    row = stored_file(database, user["id"], doc["id"])
    assert row.export_error is None and row.text_content == "Scope and pricing"


def test_a_429_and_503_burst_is_retried_and_the_result_is_exact(google, database, sandbox, connected_users):
    user = connected_users[0]
    sync(google, database, user["id"])
    make_changes(sandbox, user)
    sandbox.world.inject_fault("rate_limit", user_email=user["email"], count=2)
    sandbox.world.inject_fault("server_error", user_email=user["email"], count=1, status=503)
    sync(google, database, user["id"], page_size=3)
    assert stored_rows(database, user["id"]) == truth_rows(sandbox, user)
