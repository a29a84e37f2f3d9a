"""Gmail v1 over HTTP: `/gmail/v1/users/{userId}/...` and the media upload paths onto `GmailStore`.

google-api-python-client sends `messages.insert` / `import` / `send` with a media body to
`/upload/gmail/v1/users/{userId}/messages[/import|/send]` with `uploadType=media` (the message
alone), `multipart` (multipart/related: JSON metadata, then the message) or `resumable` (a POST
that opens a session answered with a `Location`, then PUTs of the bytes). All three are served.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from sunny_pipelines.sandbox.core.common import ApiError, bad_request
from sunny_pipelines.sandbox.core.http import Request, empty_response, json_response
from sunny_pipelines.sandbox.core.plugin import ApiRoute, route
from sunny_pipelines.sandbox.services.gmail import mime
from sunny_pipelines.sandbox.services.gmail.store import (
    GMAIL_INSERT_SCOPES,
    GMAIL_READ_SCOPES,
    GMAIL_SEND_SCOPES,
    GMAIL_WRITE_SCOPES,
    GmailStore,
    Mailbox,
)

if TYPE_CHECKING:
    from sunny_pipelines.sandbox.world import World

PREFIX = "/gmail/v1/users/{user_id}"
UPLOAD_PREFIX = "/upload/gmail/v1/users/{user_id}"
RAW_REQUIRED = "'raw' RFC822 payload message string or uploading message via /upload/* URL required"


def _bool(req: Request, name: str) -> bool:
    value = (req.arg(name) or "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise bad_request(f"Invalid value at '{name}' ({value})")
    return value in ("true", "1")


def _max_results(req: Request) -> int | None:
    value = req.arg("maxResults")
    if value is None:
        return None
    if not re.fullmatch(r"\d{1,9}", value):
        raise bad_request(f"Invalid value at 'max_results' ({value})")
    return int(value)


def _split_multipart(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart/related upload body as (lowercased headers, bytes), unparsed: the
    media part is the message itself and must reach the store byte for byte."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise bad_request("Missing multipart boundary")
    delimiter = b"--" + match.group(1).encode()
    parts = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk[1:] if chunk.startswith(b"\n") else chunk
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            head, sep, data = chunk.partition(b"\n\n")
        headers = {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if data.endswith(b"\r\n"):
            data = data[:-2]
        elif data.endswith(b"\n"):
            data = data[:-1]
        parts.append((headers, data))
    return parts


class GmailApi:
    def __init__(self, world: World, store: GmailStore) -> None:
        self.world = world
        self.store = store
        self._uploads: dict[str, dict[str, Any]] = {}  # resumable sessions by upload id

    def routes(self) -> list[ApiRoute]:
        def r(method: str, path: str, handler: Any, scopes: frozenset[str] = GMAIL_READ_SCOPES) -> ApiRoute:
            return route(method, path, handler, api="gmail", scopes=scopes)

        m = PREFIX + "/messages"
        routes = [
            r("GET", PREFIX + "/profile", self.get_profile),
            r("POST", PREFIX + "/watch", self.watch),
            r("POST", PREFIX + "/stop", self.stop),
            r("GET", PREFIX + "/labels", self.labels_list),
            r("GET", PREFIX + "/labels/{label_id}", self.labels_get),
            r("GET", PREFIX + "/history", self.history_list),
            r("GET", m, self.messages_list),
            r("POST", m, self.messages_insert, GMAIL_INSERT_SCOPES),
            r("POST", m + "/import", self.messages_import, GMAIL_INSERT_SCOPES),
            r("POST", m + "/send", self.messages_send, GMAIL_SEND_SCOPES),
            r("POST", m + "/batchModify", self.messages_batch_modify, GMAIL_WRITE_SCOPES),
            r("GET", m + "/{message_id}", self.messages_get),
            r("DELETE", m + "/{message_id}", self.messages_delete, GMAIL_WRITE_SCOPES),
            r("POST", m + "/{message_id}/modify", self.messages_modify, GMAIL_WRITE_SCOPES),
            r("POST", m + "/{message_id}/trash", self.messages_trash, GMAIL_WRITE_SCOPES),
            r("POST", m + "/{message_id}/untrash", self.messages_untrash, GMAIL_WRITE_SCOPES),
            r("GET", m + "/{message_id}/attachments/{attachment_id}", self.attachments_get),
            r("GET", PREFIX + "/threads/{thread_id}", self.threads_get),
        ]
        for suffix, kind, scopes in (
            ("", "insert", GMAIL_INSERT_SCOPES),
            ("/import", "import", GMAIL_INSERT_SCOPES),
            ("/send", "send", GMAIL_SEND_SCOPES),
        ):

            def upload(req: Request, user_id: str, _kind: str = kind) -> Response:
                return self.upload(req, user_id, _kind)

            routes.append(r("POST", UPLOAD_PREFIX + "/messages" + suffix, upload, scopes))
            routes.append(r("PUT", UPLOAD_PREFIX + "/messages" + suffix, upload, scopes))
        return routes

    def _box(self, req: Request, user_id: str) -> Mailbox:
        if user_id != "me" and user_id.lower() != req.me.email.lower():
            raise ApiError(403, "forbidden", f"Delegation denied for {req.me.email}")
        return self.store.mailbox(req.me)

    # -- users --------------------------------------------------------------------------------------------

    def get_profile(self, req: Request, user_id: str) -> Response:
        self._box(req, user_id)
        return json_response(self.store.profile(req.me))

    def watch(self, req: Request, user_id: str) -> Response:
        self._box(req, user_id)
        return json_response(self.store.watch(req.me, req.json()))

    def stop(self, req: Request, user_id: str) -> Response:
        self._box(req, user_id)
        self.store.stop(req.me)
        return empty_response()

    def labels_list(self, req: Request, user_id: str) -> Response:
        self._box(req, user_id)
        return json_response({"labels": self.store.labels(req.me)})

    def labels_get(self, req: Request, user_id: str, label_id: str) -> Response:
        self._box(req, user_id)
        return json_response(self.store.label(req.me, label_id))

    def history_list(self, req: Request, user_id: str) -> Response:
        self._box(req, user_id)
        params = {
            "startHistoryId": req.arg("startHistoryId"),
            "historyTypes": req.query.get("historyTypes") or None,
            "labelId": req.arg("labelId"),
            "maxResults": _max_results(req),
            "pageToken": req.arg("pageToken"),
        }
        return json_response(self.store.list_history(req.me, params))

    # -- messages ---------------------------------------------------------------------------------------

    def messages_list(self, req: Request, user_id: str) -> Response:
        self._box(req, user_id)
        params = {
            "q": req.arg("q"),
            "labelIds": req.query.get("labelIds") or None,
            "includeSpamTrash": _bool(req, "includeSpamTrash"),
            "maxResults": _max_results(req),
            "pageToken": req.arg("pageToken"),
        }
        return json_response(self.store.list_messages(req.me, params))

    def messages_get(self, req: Request, user_id: str, message_id: str) -> Response:
        self._box(req, user_id)
        fmt = (req.arg("format") or "full").lower()
        return json_response(
            self.store.get_message(req.me, message_id, fmt, req.query.get("metadataHeaders"))
        )

    def threads_get(self, req: Request, user_id: str, thread_id: str) -> Response:
        self._box(req, user_id)
        fmt = (req.arg("format") or "full").lower()
        return json_response(self.store.get_thread(req.me, thread_id, fmt, req.query.get("metadataHeaders")))

    def attachments_get(self, req: Request, user_id: str, message_id: str, attachment_id: str) -> Response:
        self._box(req, user_id)
        return json_response(self.store.get_attachment(req.me, message_id, attachment_id))

    def _add(
        self, req: Request, box: Mailbox, kind: str, body: dict[str, Any], raw: bytes | None
    ) -> Response:
        """insert / import / send of `raw` (or the body's base64url `raw`) with the body's metadata."""
        if raw is None:
            if not isinstance(body.get("raw"), str) or not body["raw"]:
                raise bad_request(RAW_REQUIRED, reason="invalidArgument")
            try:
                raw = mime.from_b64url(body["raw"])
            except ValueError:
                raise bad_request("Invalid value for ByteString: raw", reason="invalidArgument") from None
        if not raw.strip():
            raise bad_request(RAW_REQUIRED, reason="invalidArgument")
        labels = list(body.get("labelIds") or [])
        if kind == "send" and "SENT" not in labels:
            labels.append("SENT")
        # insert defaults to the time it arrives, import to the message's Date header.
        source = req.arg("internalDateSource") or ("dateHeader" if kind == "import" else "receivedTime")
        if source not in ("receivedTime", "dateHeader"):
            raise bad_request(f"Invalid value at 'internal_date_source' ({source})")
        now_ms = int(self.world.now() * 1000)
        internal_ms = now_ms
        if source == "dateHeader":
            internal_ms = mime.date_header_ms(mime.parse(raw)) or now_ms
        with self.world.lock:
            label_ids = self.store.check_labels(box, labels)
            thread_id = body.get("threadId") if isinstance(body.get("threadId"), str) else None
            msg = self.store.add_message(box, raw, label_ids, internal_ms, thread_id)
            return json_response({"id": msg.id, "threadId": msg.thread_id, "labelIds": list(msg.labels)})

    def messages_insert(self, req: Request, user_id: str) -> Response:
        return self._add(req, self._box(req, user_id), "insert", req.json(), None)

    def messages_import(self, req: Request, user_id: str) -> Response:
        return self._add(req, self._box(req, user_id), "import", req.json(), None)

    def messages_send(self, req: Request, user_id: str) -> Response:
        return self._add(req, self._box(req, user_id), "send", req.json(), None)

    def messages_modify(self, req: Request, user_id: str, message_id: str) -> Response:
        box = self._box(req, user_id)
        body = req.json()
        msg = self.store.change_labels(
            box, message_id, body.get("addLabelIds") or [], body.get("removeLabelIds") or []
        )
        return json_response({"id": msg.id, "threadId": msg.thread_id, "labelIds": list(msg.labels)})

    def messages_batch_modify(self, req: Request, user_id: str) -> Response:
        box = self._box(req, user_id)
        body = req.json()
        ids = body.get("ids") or []
        if not isinstance(ids, list) or len(ids) > 1000:
            raise bad_request("Invalid ids")
        with self.world.lock:
            for message_id in ids:
                if message_id in box.messages:  # unknown ids are skipped, as at Gmail
                    self.store.change_labels(
                        box, message_id, body.get("addLabelIds") or [], body.get("removeLabelIds") or []
                    )
        return empty_response()

    def messages_trash(self, req: Request, user_id: str, message_id: str) -> Response:
        msg = self.store.change_labels(self._box(req, user_id), message_id, ["TRASH"], [])
        return json_response({"id": msg.id, "threadId": msg.thread_id, "labelIds": list(msg.labels)})

    def messages_untrash(self, req: Request, user_id: str, message_id: str) -> Response:
        msg = self.store.change_labels(self._box(req, user_id), message_id, [], ["TRASH"])
        return json_response({"id": msg.id, "threadId": msg.thread_id, "labelIds": list(msg.labels)})

    def messages_delete(self, req: Request, user_id: str, message_id: str) -> Response:
        self.store.delete_message(self._box(req, user_id), message_id)
        return empty_response()

    # -- uploads ------------------------------------------------------------------------------------------

    def upload(self, req: Request, user_id: str, kind: str) -> Response:
        box = self._box(req, user_id)
        upload_type = req.arg("uploadType") or "media"
        ctype = req.headers.get("Content-Type", "")
        if upload_type == "resumable":
            return self._resumable(req, box, kind)
        if req.method != "POST":
            raise bad_request("PUT is for resumable uploads")
        if upload_type == "media":
            return self._add(req, box, kind, {}, req.body)
        if upload_type == "multipart":
            parts = _split_multipart(ctype, req.body)
            if len(parts) != 2:
                raise bad_request("A multipart upload has a metadata part and a media part")
            try:
                metadata = json.loads(parts[0][1] or b"{}")
            except ValueError:
                raise ApiError(400, "parseError", "Parse Error") from None
            return self._add(req, box, kind, metadata if isinstance(metadata, dict) else {}, parts[1][1])
        raise bad_request(f"Invalid upload type: {upload_type}")

    def _resumable(self, req: Request, box: Mailbox, kind: str) -> Response:
        upload_id = req.arg("upload_id")
        if upload_id is None:
            # Open a session: the body is the metadata; the bytes come in later PUTs.
            session_id = secrets.token_urlsafe(24)
            total = req.headers.get("X-Upload-Content-Length")
            self._uploads[session_id] = {
                "user_id": box.user_id,
                "kind": kind,
                "metadata": req.json(),
                "data": bytearray(),
                "total": int(total) if total and total.isdigit() else None,
            }
            location = f"{self.world.base_url}{req.path}?uploadType=resumable&upload_id={session_id}"
            return Response(b"", 200, {"Location": location, "X-GUploader-UploadID": session_id})
        session = self._uploads.get(upload_id)
        if session is None or session["user_id"] != box.user_id or session["kind"] != kind:
            raise ApiError(404, "notFound", "Upload session not found")
        match = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", req.headers.get("Content-Range", ""))
        if match:
            start, total = int(match.group(1)), match.group(3)
            if start != len(session["data"]):
                return Response(b"", 308, {"Range": f"bytes=0-{len(session['data']) - 1}"})
            session["data"] += req.body
            if total != "*":
                session["total"] = int(total)
        else:
            session["data"] += req.body
            session["total"] = len(session["data"])
        if session["total"] is None or len(session["data"]) < session["total"]:
            return Response(b"", 308, {"Range": f"bytes=0-{len(session['data']) - 1}"})
        del self._uploads[upload_id]
        return self._add(req, box, kind, session["metadata"], bytes(session["data"]))
