"""End to end with a real Dagster daemon: a Drive change and a new Gmail message, made through
the Google client, reach `drive_files` and `emails` by the push path alone (sandbox → Drive
channel notification / signed Pub/Sub push → receiver → inbox → sensor → run)."""

from __future__ import annotations

import pytest
from googleapiclient.http import MediaInMemoryUpload
from sqlalchemy import select

from sunny_pipelines.db.models import DriveFile, Email, WebhookInbox
from sunny_pipelines.drive.channels import ensure_drive_channel
from sunny_pipelines.drive.sync import sync_user_drive
from sunny_pipelines.gmail.sync import sync_user_mail
from sunny_pipelines.gmail.watch import ensure_gmail_watch
from sunny_pipelines.vocabulary import Source
from sunny_pipelines_tests.gmail.mailbox import insert, plain_email
from sunny_pipelines_tests.google_clients import GMAIL_TOPIC, google_client
from sunny_pipelines_tests.stack import daemon_stack

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(tmp_path, database, cipher, sandbox, connected_users, receiver, push_google):
    """Ada's Drive and Gmail synced with their channel and watch (as after her first runs), and a
    Dagster daemon running."""
    ada = connected_users[0]
    session = push_google.session(ada["id"])
    sync_user_drive(session, database, ada["id"])
    ensure_drive_channel(session, database, ada["id"], receiver)
    sync_user_mail(session, database, ada["id"])
    ensure_gmail_watch(session, database, ada["id"], GMAIL_TOPIC)
    with daemon_stack(tmp_path, database, cipher, sandbox, connected_users, receiver) as stack:
        yield stack


def value(database, query) -> object:
    with database.begin() as conn:
        return conn.execute(query).scalar()


def inbox_statuses(database, source: Source) -> list[str]:
    with database.begin() as conn:
        return list(conn.execute(select(WebhookInbox.status).where(WebhookInbox.source == source)).scalars())


def test_drive_and_gmail_changes_reach_the_database_by_push_alone(database, sandbox, connected_users, stack):
    ada = connected_users[0]
    created = (
        google_client(sandbox, ada, "drive")
        .files()
        .create(
            body={"name": "Pushed board notes", "mimeType": "application/vnd.google-apps.document"},
            media_body=MediaInMemoryUpload(b"Decisions: ship it", mimetype="text/plain"),
        )
        .execute()
    )
    sent = insert(
        google_client(sandbox, ada, "gmail"),
        plain_email("grace@example.com", ada["email"], "Pushed through Pub/Sub", "See you at noon"),
    )

    file_text = select(DriveFile.text_content).where(
        DriveFile.user_id == ada["id"], DriveFile.file_id == created["id"]
    )
    stack.wait(lambda: value(database, file_text), "the Drive file's arrival")
    assert value(database, file_text) == "Decisions: ship it"
    email_status = select(Email.processing_status).where(
        Email.user_id == ada["id"], Email.message_id == sent["id"]
    )
    stack.wait(lambda: value(database, email_status) == "processed", "the email's arrival and processing")

    for source in (Source.GOOGLE_DRIVE, Source.GOOGLE_GMAIL):
        stack.wait(
            lambda source=source: (
                inbox_statuses(database, source) and set(inbox_statuses(database, source)) == {"done"}
            ),
            f"{source} rows done",
            timeout=30,
        )
