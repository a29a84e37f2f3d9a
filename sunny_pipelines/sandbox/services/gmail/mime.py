"""RFC 822 messages as Gmail shows them: the `payload` tree, headers, snippet, base64url.

Parsing uses the stdlib's lenient `compat32` policy, so a malformed message (a multipart whose
boundary never appears, broken base64) still parses, as Gmail still shows it.
"""

from __future__ import annotations

import base64
import email
import email.message
import html
import re
from collections.abc import Callable
from email.header import decode_header, make_header
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

SNIPPET_CHARS = 200
_TAGS = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.S | re.I)
_SPACE = re.compile(r"\s+")
_REPLY_PREFIX = re.compile(r"^\s*((re|fwd?|aw|sv)\s*:\s*)+", re.I)


def b64url(data: bytes) -> str:
    """Gmail's base64url (with padding), as in `raw` and `body.data`."""
    return base64.urlsafe_b64encode(data).decode()


def from_b64url(text: str) -> bytes:
    """Decode base64url or standard base64, padded or not; ValueError if it is neither."""
    cleaned = "".join(text.split()).replace("+", "-").replace("/", "_")
    return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))


def parse(raw: bytes) -> email.message.Message:
    return email.message_from_bytes(raw)


def header_text(value: Any) -> str:
    """A header value with RFC 2047 encoded words decoded and folding removed (as the API shows it)."""
    text = str(value)
    try:
        if "=?" in text:
            text = str(make_header(decode_header(text)))
    except (ValueError, LookupError, UnicodeError):
        pass
    return _SPACE.sub(" ", text.replace("\r", "").replace("\n", " ")).strip()


def headers_of(part: email.message.Message) -> list[dict[str, str]]:
    return [{"name": name, "value": header_text(value)} for name, value in part.items()]


def first_header(msg: email.message.Message, name: str) -> str:
    value = msg.get(name)
    return header_text(value) if value is not None else ""


def message_ids(value: str) -> list[str]:
    """The `<id>` tokens of a Message-ID / In-Reply-To / References header."""
    return re.findall(r"<[^<>\s]+>", value or "")


def normalized_subject(subject: str) -> str:
    return _REPLY_PREFIX.sub("", subject or "").strip().lower()


def addresses(value: str) -> list[str]:
    return [addr.lower() for _, addr in getaddresses([value or ""]) if addr]


def date_header_ms(msg: email.message.Message) -> int | None:
    value = msg.get("Date")
    if not value:
        return None
    try:
        return int(parsedate_to_datetime(str(value)).timestamp() * 1000)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _decoded(part: email.message.Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except (ValueError, TypeError):  # compat32 is lenient, but be safe on very broken input
        data = None
    if isinstance(data, bytes):
        return data
    payload = part.get_payload()
    return payload.encode("utf-8", "replace") if isinstance(payload, str) else b""


def _text(part: email.message.Message) -> str:
    charset = part.get_content_charset() or "utf-8"
    data = _decoded(part)
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def snippet_of(msg: email.message.Message) -> str:
    """The first ~200 characters of the message's text (HTML stripped), HTML-escaped like Gmail's."""
    plain = html_part = None
    for part in msg.walk():
        if part.is_multipart() or part.get_filename():
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain" and plain is None:
            plain = _text(part)
        elif ctype == "text/html" and html_part is None:
            html_part = html.unescape(_TAGS.sub(" ", _text(part)))
    text = plain if plain is not None else html_part or ""
    text = _SPACE.sub(" ", text).strip()[:SNIPPET_CHARS]
    return html.escape(text, quote=False).replace('"', "&quot;").replace("'", "&#39;")


def payload_of(
    part: email.message.Message, attachment_id: Callable[[str], str], part_id: str = ""
) -> dict[str, Any]:
    """The `payload` of `format=full`: a MessagePart tree. Named parts (attachments) carry an
    `attachmentId` instead of inline data, as at Gmail."""
    filename = part.get_filename() or ""
    out: dict[str, Any] = {
        "partId": part_id,
        "mimeType": part.get_content_type(),
        "filename": header_text(filename) if filename else "",
        "headers": headers_of(part),
    }
    children = part.get_payload() if part.is_multipart() else None
    if isinstance(children, list):
        out["body"] = {"size": 0}
        out["parts"] = [
            payload_of(child, attachment_id, f"{part_id}.{i}" if part_id else str(i))
            for i, child in enumerate(children)
        ]
        return out
    data = _decoded(part)
    if filename:
        out["body"] = {"attachmentId": attachment_id(part_id), "size": len(data)}
    elif data:
        out["body"] = {"size": len(data), "data": b64url(data)}
    else:
        out["body"] = {"size": 0}
    return out


def find_part(msg: email.message.Message, part_id: str) -> email.message.Message | None:
    """The part named by a payload `partId` ("" is the message, "1.0" the first child of the second)."""
    node = msg
    for index in [int(i) for i in part_id.split(".")] if part_id else []:
        children = node.get_payload() if node.is_multipart() else None
        if not isinstance(children, list) or not 0 <= index < len(children):
            return None
        node = children[index]
    return node


def part_bytes(part: email.message.Message) -> bytes:
    return _decoded(part)
