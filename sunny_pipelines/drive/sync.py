"""Syncing one user's Google Drive into `drive_files`.

Google's contract: save `changes.getStartPageToken`, list every file once, then follow
`changes.list` from the saved token through every page to `newStartPageToken`. A page token
Google no longer accepts is recovered by a full listing that also marks the files gone since.
The token is taken *before* a full listing, so a change made during the listing is seen again
by the next incremental sync rather than lost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from googleapiclient.errors import HttpError
from sqlalchemy import Connection, or_, select, update

from sunny_pipelines.db import sync_state
from sunny_pipelines.db.models import DriveFile
from sunny_pipelines.db.upserts import upsert
from sunny_pipelines.drive.files import (
    FILE_FIELDS,
    TEXT_EXPORTS,
    export_mime_type,
    file_row,
    text_export,
)
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleSession, http_status
from sunny_pipelines.vocabulary import Service

SERVICE = Service.DRIVE
DEFAULT_INTERVAL = 15 * 60  # the old beat table's "Drive sync, every 15 min"
PAGE_SIZE = 1000  # Drive's maximum for files.list and changes.list
# Exports per user per sync: a first sync of a large Drive spreads them over a few syncs.
EXPORTS_PER_SYNC = 200
# What Drive answers for a page token it no longer accepts.
STALE_TOKEN_STATUSES = (400, 404, 410)
KEY = ["user_id", "file_id"]


@dataclass
class DriveSyncResult:
    full_listing: bool = False
    page_token_expired: bool = False
    files_upserted: int = 0
    files_removed: int = 0
    pages: int = 0
    exported: int = 0
    export_errors: int = 0
    api_calls: int = 0
    duration_seconds: float = 0.0

    @property
    def change_count(self) -> int:
        return self.files_upserted + self.files_removed

    def metadata(self) -> dict[str, Any]:
        return {
            "change_count": self.change_count,
            "files_upserted": self.files_upserted,
            "files_removed": self.files_removed,
            "full_listing": self.full_listing,
            "page_token_expired": self.page_token_expired,
            "pages": self.pages,
            "text_exports": self.exported,
            "export_errors": self.export_errors,
            "api_calls": self.api_calls,
        }


def _list_all_files(session: GoogleSession, page_size: int, result: DriveSyncResult) -> list[dict[str, Any]]:
    files = session.drive().files()
    items: list[dict[str, Any]] = []
    for page in session.pages(
        lambda token: files.list(
            pageSize=page_size, pageToken=token, spaces="drive", fields=f"nextPageToken,files({FILE_FIELDS})"
        )
    ):
        result.pages += 1
        items.extend(page.get("files", []))
    return items


def _list_changes(
    session: GoogleSession, start_token: str, page_size: int, result: DriveSyncResult
) -> tuple[list[dict[str, Any]], str]:
    """Every change since ``start_token`` (all pages); returns (changes, newStartPageToken)."""
    changes = session.drive().changes()
    fields = f"nextPageToken,newStartPageToken,changes(changeType,fileId,removed,time,file({FILE_FIELDS}))"
    items: list[dict[str, Any]] = []
    for page in session.pages(
        lambda token: changes.list(
            pageToken=token or start_token,
            pageSize=page_size,
            includeRemoved=True,
            spaces="drive",
            fields=fields,
        )
    ):
        result.pages += 1
        items.extend(page.get("changes", []))
    if not page.get("newStartPageToken"):
        raise ValueError("the last page of changes.list has no newStartPageToken")
    return items, page["newStartPageToken"]


def _mark_removed(
    conn: Connection, user_id: str, file_ids: list[str] | None, keep: set[str], now: datetime
) -> int:
    """Mark removed the user's files in ``file_ids`` (None: every file not in ``keep``)."""
    stmt = update(DriveFile).where(DriveFile.user_id == user_id, DriveFile.removed.is_(False))
    if file_ids is not None:
        stmt = stmt.where(DriveFile.file_id.in_(file_ids))
    elif keep:
        stmt = stmt.where(DriveFile.file_id.not_in(list(keep)))
    return conn.execute(stmt.values(removed=True, removed_at=now, synced_at=now)).rowcount


def full_listing(
    session: GoogleSession, database: DatabaseResource, user_id: str, page_size: int, result: DriveSyncResult
) -> None:
    result.full_listing = True
    start = session.execute(session.drive().changes().getStartPageToken())["startPageToken"]
    items = _list_all_files(session, page_size, result)
    now = datetime.now(UTC)
    rows = {item["id"]: file_row(user_id, item, now) for item in items}
    with database.begin() as conn:
        result.files_upserted += upsert(conn, DriveFile.__table__, list(rows.values()), KEY)
        # What the listing no longer has was deleted (or unshared) while we were not looking.
        result.files_removed += _mark_removed(conn, user_id, None, set(rows), now)
        sync_state.save_cursor(conn, user_id, SERVICE, start, default_interval_seconds=DEFAULT_INTERVAL)


def follow_changes(
    session: GoogleSession,
    database: DatabaseResource,
    user_id: str,
    token: str,
    page_size: int,
    result: DriveSyncResult,
) -> None:
    changes, new_token = _list_changes(session, token, page_size, result)
    now = datetime.now(UTC)
    latest: dict[str, dict[str, Any]] = {}
    for change in changes:  # the last word on a file wins
        if change.get("changeType", "file") == "file" and change.get("fileId"):
            latest[change["fileId"]] = change
    removed = [fid for fid, c in latest.items() if c.get("removed") or not c.get("file")]
    rows = [file_row(user_id, c["file"], now) for fid, c in latest.items() if fid not in removed]
    # Rows and the new token commit together: a crash before this leaves the old token.
    with database.begin() as conn:
        result.files_upserted += upsert(conn, DriveFile.__table__, rows, KEY)
        if removed:
            result.files_removed += _mark_removed(conn, user_id, removed, set(), now)
        sync_state.save_cursor(conn, user_id, SERVICE, new_token, default_interval_seconds=DEFAULT_INTERVAL)


def export_texts(
    session: GoogleSession, database: DatabaseResource, user_id: str, result: DriveSyncResult, limit: int
) -> None:
    """Export the text of Docs, Sheets and Slides whose content changed since their last export.
    A failed export is recorded on its row and retried by the next sync; the sync goes on."""
    with database.begin() as conn:
        pending = conn.execute(
            select(DriveFile.file_id, DriveFile.mime_type, DriveFile.version)
            .where(
                DriveFile.user_id == user_id,
                DriveFile.mime_type.in_(list(TEXT_EXPORTS)),
                DriveFile.removed.is_(False),
                DriveFile.trashed.is_(False),
                # Drive bumps a file's version on every change.
                or_(DriveFile.exported_version.is_(None), DriveFile.exported_version != DriveFile.version),
            )
            .order_by(DriveFile.modified_time.desc())
            .limit(limit)
        ).all()
    files = session.drive().files()
    for file_id, mime_type, version in pending:
        values: dict[str, Any]
        try:
            content = session.execute(files.export(fileId=file_id, mimeType=export_mime_type(mime_type)))
        except HttpError as exc:
            if http_status(exc) == 404:  # gone since the listing: the next change says so
                continue
            result.export_errors += 1
            values = {"export_error": f"HTTP {http_status(exc)}: {exc.reason}"[:1000]}
        else:
            export = text_export(content if isinstance(content, bytes) else str(content).encode())
            result.exported += 1
            values = {
                "text_content": export.text,
                "content_hash": export.content_hash,
                "content_truncated": export.truncated,
                "exported_version": version,
                "export_error": None,
            }
        with database.begin() as conn:
            # Only if the file is still at the version exported: a newer one is exported next time.
            conn.execute(
                update(DriveFile)
                .where(DriveFile.user_id == user_id, DriveFile.file_id == file_id)
                .where(DriveFile.version.is_not_distinct_from(version))
                .values(**values)
            )


def sync_user_drive(
    session: GoogleSession,
    database: DatabaseResource,
    user_id: str,
    *,
    page_size: int = PAGE_SIZE,
    exports_per_sync: int = EXPORTS_PER_SYNC,
) -> DriveSyncResult:
    """Sync one user's Drive (the caller records the outcome in `sync_state`)."""
    started = time.monotonic()
    result = DriveSyncResult()
    try:
        with database.begin() as conn:
            token = sync_state.saved_cursor(conn, user_id, SERVICE)
        if token is None:
            full_listing(session, database, user_id, page_size, result)
        else:
            try:
                follow_changes(session, database, user_id, token, page_size, result)
            except HttpError as exc:
                if http_status(exc) not in STALE_TOKEN_STATUSES:
                    raise
                result.page_token_expired = True
                full_listing(session, database, user_id, page_size, result)
        export_texts(session, database, user_id, result, exports_per_sync)
        session.persist_token()
    finally:
        result.api_calls = session.api_calls
        result.duration_seconds = time.monotonic() - started
    return result
