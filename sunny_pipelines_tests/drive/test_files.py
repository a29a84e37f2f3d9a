"""What a Drive file means for Sunny: rows and text exports, as plain functions."""

import hashlib
from datetime import UTC, datetime

from sunny_pipelines.drive.files import export_mime_type, file_row, text_export

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def test_a_binary_file_keeps_its_checksum_and_a_google_doc_has_none():
    pdf = file_row(
        "u1",
        {
            "id": "f1",
            "name": "Q3 report.pdf",
            "mimeType": "application/pdf",
            "parents": ["folder-1"],
            "modifiedTime": "2026-11-20T10:15:00.000Z",
            "md5Checksum": "0cc175b9c0f1b6a831c399e269772661",
            "size": "48213",
            "version": "7",
            "owners": [{"emailAddress": "ada@example.com"}],
            "trashed": False,
        },
        NOW,
    )
    assert pdf["md5_checksum"] == "0cc175b9c0f1b6a831c399e269772661"
    assert pdf["size"] == 48213 and pdf["version"] == "7"
    assert pdf["modified_time"] == datetime(2026, 11, 20, 10, 15, tzinfo=UTC)
    assert pdf["owners"] == ["ada@example.com"] and pdf["parents"] == ["folder-1"]
    doc = file_row(
        "u1", {"id": "d1", "name": "Notes", "mimeType": "application/vnd.google-apps.document"}, NOW
    )
    assert doc["md5_checksum"] is None and doc["size"] is None and doc["parents"] == []
    assert doc["trashed"] is False and doc["removed"] is False


def test_only_docs_sheets_and_slides_are_exported_as_text():
    assert export_mime_type("application/vnd.google-apps.document") == "text/plain"
    assert export_mime_type("application/vnd.google-apps.spreadsheet") == "text/csv"
    assert export_mime_type("application/vnd.google-apps.presentation") == "text/plain"
    for other in ("application/pdf", "application/vnd.google-apps.folder", "image/png", None):
        assert export_mime_type(other) is None


def test_a_long_export_is_cut_on_a_word_boundary_and_hashed_whole():
    content = ("word " * 50).encode()
    export = text_export(content, limit=23)
    assert export.truncated and export.text == "word word word word"
    assert export.content_hash == hashlib.sha256(content).hexdigest()
    short = text_export("\ufeffMeeting notes\r\nAgenda".encode())
    assert not short.truncated and short.text == "Meeting notes\nAgenda"
