"""Test helpers: the sandbox's Drive truth and what the pipeline stored, in one comparable shape."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from sunny_pipelines.db.models import DriveFile
from sunny_pipelines.drive.files import file_row


def _comparable(row: dict[str, Any]) -> tuple:
    def norm(value: datetime | None) -> str | None:
        return value.astimezone(UTC).isoformat() if value else None

    return (
        row["file_id"],
        row["name"],
        row["mime_type"],
        tuple(sorted(row["parents"])),
        norm(row["modified_time"]),
        row["md5_checksum"],
        row["trashed"],
    )


def drive_truth(sandbox, user: dict) -> dict[str, Any]:
    return sandbox.world.truth("drive", user["email"])


def truth_rows(sandbox, user: dict) -> set[tuple]:
    """Every file the user can see in the sandbox (trashed included), as `drive_files` rows."""
    now = datetime.now(UTC)
    return {_comparable(file_row(user["id"], item, now)) for item in drive_truth(sandbox, user)["files"]}


def stored_rows(database, user_id: str) -> set[tuple]:
    """The user's `drive_files` rows that are not removed."""
    with database.begin() as conn:
        rows = conn.execute(
            select(DriveFile.__table__).where(DriveFile.user_id == user_id, DriveFile.removed.is_(False))
        ).mappings()
        return {_comparable(dict(row)) for row in rows}


def stored_file(database, user_id: str, file_id: str) -> Any:
    with database.begin() as conn:
        return conn.execute(
            select(DriveFile.__table__).where(DriveFile.user_id == user_id, DriveFile.file_id == file_id)
        ).one_or_none()
