"""What a Drive file resource means for Sunny: its `drive_files` row, and which files keep a
plain-text export (the AI classifier reads Docs, Sheets and Slides; other files keep metadata)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

FOLDER = "application/vnd.google-apps.folder"
# Google's own formats and the export that keeps their text.
TEXT_EXPORTS = {
    "application/vnd.google-apps.document": "text/plain",
    "application/vnd.google-apps.spreadsheet": "text/csv",
    "application/vnd.google-apps.presentation": "text/plain",
}
# Enough for classification; the hash covers the whole export, so a change past the cap counts.
EXPORT_TEXT_LIMIT = 100_000
# The fields a sync asks for (files.list, changes.list).
FILE_FIELDS = (
    "id,name,mimeType,parents,createdTime,modifiedTime,md5Checksum,size,version,"
    "owners(emailAddress,displayName),shared,webViewLink,trashed"
)


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def file_row(user_id: str, item: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The `drive_files` row of a Drive file resource the user can see."""
    return {
        "user_id": user_id,
        "file_id": item["id"],
        "name": item.get("name"),
        "mime_type": item.get("mimeType"),
        "parents": list(item.get("parents") or []),
        "created_time": _time(item.get("createdTime")),
        "modified_time": _time(item.get("modifiedTime")),
        # Google gives checksums for binary content only, never for its own formats.
        "md5_checksum": item.get("md5Checksum"),
        "size": int(item["size"]) if item.get("size") is not None else None,
        "version": str(item["version"]) if item.get("version") is not None else None,
        "owners": [o.get("emailAddress") for o in item.get("owners") or [] if o.get("emailAddress")],
        "shared": bool(item.get("shared")),
        "web_view_link": item.get("webViewLink"),
        "trashed": bool(item.get("trashed")),
        "removed": False,
        "removed_at": None,
        "synced_at": now,
    }


def export_mime_type(mime_type: str | None) -> str | None:
    """The text format a file is exported in, None for files that keep metadata only."""
    return TEXT_EXPORTS.get(mime_type or "")


@dataclass(frozen=True)
class TextExport:
    text: str
    content_hash: str
    truncated: bool


def text_export(content: bytes, limit: int = EXPORT_TEXT_LIMIT) -> TextExport:
    """The stored form of an export: text capped at ``limit`` characters on a word boundary,
    and the SHA-256 of the whole export."""
    text = content.decode("utf-8", errors="replace").replace("\r\n", "\n").lstrip("\ufeff")
    truncated = len(text) > limit
    if truncated:
        cut = text[:limit]
        boundary = max(cut.rfind(" "), cut.rfind("\n"))
        text = cut[:boundary] if boundary > limit // 2 else cut
    return TextExport(text, hashlib.sha256(content).hexdigest(), truncated)
