"""Drive v3 over HTTP: metadata under `/drive/v3/`, uploads under `/upload/drive/v3/files`.

Uploads follow Google's three protocols (`uploadType`): `media` (the body is the content),
`multipart` (a `multipart/related` body: JSON metadata, then the content) and `resumable` (a POST
with the metadata opens a session whose URL, in `Location`, takes the content with PUT).

The real client sends uploads to the discovery document's upload path with the host of
`api_endpoint` but keeps the document's `https` scheme (googleapiclient swaps only the host), so a
client talking to the sandbox over plain HTTP must map that scheme back (the tests do).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from sunny_pipelines.sandbox.core.common import ApiError, bad_request
from sunny_pipelines.sandbox.core.http import Request, empty_response, json_response
from sunny_pipelines.sandbox.core.plugin import ApiRoute, route
from sunny_pipelines.sandbox.services.drive.store import (
    DEFAULT_PAGE_SIZE,
    DRIVE_SCOPES,
    MAX_PAGE_SIZE,
    DriveStore,
    invalid_parameter,
    new_file_id,
)

if TYPE_CHECKING:
    from sunny_pipelines.sandbox.world import World

PREFIX = "/drive/v3"
UPLOAD_PREFIX = "/upload/drive/v3"
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)


def _bool(req: Request, name: str, default: bool) -> bool:
    value = req.arg(name)
    if value is None:
        return default
    if value.lower() not in ("true", "false"):
        raise invalid_parameter(name, f"Invalid boolean value: '{value}'.")
    return value.lower() == "true"


def _page_size(req: Request) -> int:
    value = req.arg("pageSize")
    if value is None or value == "":
        return DEFAULT_PAGE_SIZE
    try:
        size = int(value)
    except ValueError:
        raise invalid_parameter(
            "pageSize",
            f"Invalid value '{value}'. Values must match the following regular expression: '-?\\d+'",
        ) from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise invalid_parameter(
            "pageSize", f"Invalid value '{value}'. Values must be within the range: [1, {MAX_PAGE_SIZE}]"
        )
    return size


def _required(req: Request, name: str) -> str:
    value = req.arg(name)
    if not value:
        raise ApiError(
            400, "required", f"Required parameter: {name}", location=name, locationType="parameter"
        )
    return value


def _id_list(req: Request, name: str) -> list[str]:
    return [p for p in (req.arg(name) or "").split(",") if p.strip()]


def parse_multipart(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a `multipart/related` body: (headers with lower-case names, content)."""
    m = _BOUNDARY.search(content_type)
    if m is None:
        raise bad_request("Missing boundary in multipart body.", reason="badContent")
    delimiter = b"--" + m.group(1).encode()
    chunks = body.split(delimiter)
    if len(chunks) < 3:
        raise bad_request("Malformed multipart body.", reason="badContent")
    parts = []
    for chunk in chunks[1:-1]:  # before the first delimiter: preamble; after the last: "--"
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk[1:] if chunk.startswith(b"\n") else chunk
        # The line break before the next delimiter belongs to the delimiter (RFC 2046).
        chunk = chunk[:-2] if chunk.endswith(b"\r\n") else chunk[:-1] if chunk.endswith(b"\n") else chunk
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            head, sep, content = chunk.partition(b"\n\n")
        if not sep:
            raise bad_request("Malformed multipart body.", reason="badContent")
        headers = {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.strip():
                headers[name.strip().lower()] = value.strip()
        parts.append((headers, content))
    return parts


@dataclass
class UploadSession:
    """A resumable upload: who opened it, for which file (None: a new one), with what metadata."""

    user_id: str
    file_id: str | None
    metadata: dict[str, Any]
    mime_type: str
    add_parents: list[str]
    remove_parents: list[str]
    received: bytes = b""


class DriveApi:
    def __init__(self, world: World, store: DriveStore) -> None:
        self.world = world
        self.store = store
        self.sessions: dict[str, UploadSession] = {}  # resumable uploads by upload id

    def routes(self) -> list[ApiRoute]:
        def r(method: str, path: str, handler: Any) -> ApiRoute:
            return route(method, path, handler, api="drive", scopes=DRIVE_SCOPES)

        return [
            r("GET", PREFIX + "/about", self.about_get),
            r("GET", PREFIX + "/files", self.files_list),
            r("POST", PREFIX + "/files", self.files_create),
            r("GET", PREFIX + "/files/generateIds", self.files_generate_ids),
            r("DELETE", PREFIX + "/files/trash", self.files_empty_trash),
            r("GET", PREFIX + "/files/{file_id}", self.files_get),
            r("PATCH", PREFIX + "/files/{file_id}", self.files_update),
            r("DELETE", PREFIX + "/files/{file_id}", self.files_delete),
            r("GET", PREFIX + "/files/{file_id}/export", self.files_export),
            r("GET", PREFIX + "/files/{file_id}/permissions", self.permissions_list),
            r("POST", PREFIX + "/files/{file_id}/permissions", self.permissions_create),
            r("DELETE", PREFIX + "/files/{file_id}/permissions/{permission_id}", self.permissions_delete),
            r("GET", PREFIX + "/changes/startPageToken", self.changes_start_page_token),
            r("GET", PREFIX + "/changes", self.changes_list),
            r("POST", PREFIX + "/changes/watch", self.changes_watch),
            r("POST", PREFIX + "/channels/stop", self.channels_stop),
            r("POST", UPLOAD_PREFIX + "/files", self.upload_create),
            r("PUT", UPLOAD_PREFIX + "/files", self.upload_resume),
            r("PATCH", UPLOAD_PREFIX + "/files/{file_id}", self.upload_update),
        ]

    # -- about --------------------------------------------------------------------------------------------

    def about_get(self, req: Request) -> Response:
        _required(req, "fields")  # Google insists on a field mask for about.get
        user = req.me
        return json_response(
            {
                "kind": "drive#about",
                "user": {
                    "kind": "drive#user",
                    "displayName": user.name,
                    "me": True,
                    "emailAddress": user.email,
                },
                "storageQuota": {"limit": str(15 * 1024**3), "usage": "0", "usageInDrive": "0"},
            }
        )

    # -- files --------------------------------------------------------------------------------------------

    def files_list(self, req: Request) -> Response:
        return json_response(
            self.store.list_files(req.me, req.arg("q"), _page_size(req), req.arg("pageToken"))
        )

    def files_get(self, req: Request, file_id: str) -> Response:
        if req.arg("alt") == "media":
            self.store.check_content_scope(req.scopes)
            content, mime_type = self.store.media(req.me, file_id)
            return Response(content, 200, {"Content-Type": mime_type})
        return json_response(self.store.get_file(req.me, file_id))

    def files_export(self, req: Request, file_id: str) -> Response:
        mime_type = _required(req, "mimeType")
        self.store.check_content_scope(req.scopes)
        content = self.store.export(req.me, file_id, mime_type)
        return Response(content, 200, {"Content-Type": mime_type})

    def files_create(self, req: Request) -> Response:
        self.store.check_write_scope(req.scopes)
        return json_response(self.store.create_file(req.me, req.json()))

    def files_update(self, req: Request, file_id: str) -> Response:
        self.store.check_write_scope(req.scopes)
        res = self.store.update_file(
            req.me, file_id, req.json(), _id_list(req, "addParents"), _id_list(req, "removeParents")
        )
        return json_response(res)

    def files_delete(self, req: Request, file_id: str) -> Response:
        self.store.check_write_scope(req.scopes)
        self.store.delete_file(req.me, file_id)
        return empty_response()

    def files_empty_trash(self, req: Request) -> Response:
        self.store.check_write_scope(req.scopes)
        self.store.empty_trash(req.me)
        return empty_response()

    def files_generate_ids(self, req: Request) -> Response:
        count = int(req.arg("count") or 10)
        if not 1 <= count <= 1000:
            raise invalid_parameter("count")
        ids = [new_file_id() for _ in range(count)]
        return json_response({"kind": "drive#generatedIds", "space": "drive", "ids": ids})

    # -- permissions --------------------------------------------------------------------------------------

    def permissions_list(self, req: Request, file_id: str) -> Response:
        return json_response(self.store.list_permissions(req.me, file_id))

    def permissions_create(self, req: Request, file_id: str) -> Response:
        self.store.check_write_scope(req.scopes)
        return json_response(self.store.create_permission(req.me, file_id, req.json()))

    def permissions_delete(self, req: Request, file_id: str, permission_id: str) -> Response:
        self.store.check_write_scope(req.scopes)
        self.store.delete_permission(req.me, file_id, permission_id)
        return empty_response()

    # -- uploads ------------------------------------------------------------------------------------------

    def _upload(self, req: Request) -> tuple[dict[str, Any], tuple[bytes, str] | None]:
        """Metadata and content of a `media` or `multipart` upload."""
        upload_type = req.arg("uploadType")
        content_type = req.headers.get("Content-Type", "application/octet-stream")
        if upload_type == "media":
            return {}, (req.body, content_type.split(";")[0].strip())
        if upload_type == "multipart":
            parts = parse_multipart(req.body, content_type)
            if len(parts) != 2:
                raise bad_request(
                    "A multipart upload has exactly two parts: metadata and media.", reason="badContent"
                )
            (meta_headers, meta), (media_headers, media) = parts
            body = Request("POST", req.path, {}, {}, meta).json()
            return body, (media, media_headers.get("content-type", "application/octet-stream").split(";")[0])
        raise invalid_parameter("uploadType", f"Invalid value for: uploadType ({upload_type!r})")

    def upload_create(self, req: Request) -> Response:
        self.store.check_write_scope(req.scopes)
        if req.arg("uploadType") == "resumable":
            return self._open_session(req, None)
        body, media = self._upload(req)
        return json_response(self.store.create_file(req.me, body, media))

    def upload_update(self, req: Request, file_id: str) -> Response:
        self.store.check_write_scope(req.scopes)
        if req.arg("uploadType") == "resumable":
            self.store.get_file(req.me, file_id)  # 404 now rather than after the upload
            return self._open_session(req, file_id)
        body, media = self._upload(req)
        res = self.store.update_file(
            req.me, file_id, body, _id_list(req, "addParents"), _id_list(req, "removeParents"), media
        )
        return json_response(res)

    def _open_session(self, req: Request, file_id: str | None) -> Response:
        upload_id = secrets.token_urlsafe(24)
        self.sessions[upload_id] = UploadSession(
            req.me.id,
            file_id,
            req.json(),
            req.headers.get("X-Upload-Content-Type", "application/octet-stream"),
            _id_list(req, "addParents"),
            _id_list(req, "removeParents"),
        )
        location = f"{self.world.base_url}{UPLOAD_PREFIX}/files?uploadType=resumable&upload_id={upload_id}"
        return Response(b"", 200, {"Location": location, "X-GUploader-UploadID": upload_id})

    def upload_resume(self, req: Request) -> Response:
        session = self.sessions.get(req.arg("upload_id") or "")
        if session is None or session.user_id != req.me.id:
            raise ApiError(404, "notFound", "Upload session not found.")
        # Content-Range: "bytes a-b/total", "bytes */total" (a status query) or absent (everything).
        match = re.fullmatch(
            r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", req.headers.get("Content-Range", "").strip()
        )
        if req.body:
            if match and match.group(1) is not None and int(match.group(1)) != len(session.received):
                raise bad_request("Invalid Content-Range for this upload.", reason="badContent")
            session.received += req.body
        total = match.group(3) if match else str(len(session.received))
        if total == "*" or len(session.received) < int(total):
            headers = {"Range": f"bytes=0-{len(session.received) - 1}"} if session.received else {}
            return Response(b"", 308, headers)
        del self.sessions[req.arg("upload_id") or ""]
        media = (session.received, session.metadata.get("mimeType") or session.mime_type)
        if session.file_id is None:
            return json_response(self.store.create_file(req.me, session.metadata, media))
        res = self.store.update_file(
            req.me, session.file_id, session.metadata, session.add_parents, session.remove_parents, media
        )
        return json_response(res)

    # -- changes and channels -----------------------------------------------------------------------------

    def changes_start_page_token(self, req: Request) -> Response:
        return json_response(self.store.start_page_token(req.me))

    def changes_list(self, req: Request) -> Response:
        res = self.store.list_changes(
            req.me, _required(req, "pageToken"), _page_size(req), _bool(req, "includeRemoved", True)
        )
        return json_response(res)

    def changes_watch(self, req: Request) -> Response:
        target = self.store.changes_watch_target(req.me, _required(req, "pageToken"))
        return json_response(self.world.channels.create(req.me.id, req.json(), target))

    def channels_stop(self, req: Request) -> Response:
        self.world.channels.stop(req.me.id, req.json())
        return empty_response()
