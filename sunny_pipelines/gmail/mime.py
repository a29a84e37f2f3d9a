"""Reading a raw Gmail message (RFC 822 bytes) into the few fields that email processing needs.

Plain functions, standard library only. `parse_message` never raises: whatever the email
package or this module finds wrong goes into `ParsedMessage.defects` as a sentence an operator
can read, and `is_malformed` says whether any of them leaves the message unprocessable.
"""

from __future__ import annotations

import base64
import codecs
import email
import email.policy
import email.utils
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from email import errors
from email.header import decode_header, make_header
from email.message import Message
from html.parser import HTMLParser
from typing import Any

BODY_TEXT_LIMIT = 20_000
CALENDAR_PART_LIMIT = 100_000
HEADER_VALUE_LIMIT = 2_000

# The headers that processing (and the AI classifier after it) reads, lower-cased. Only the
# first occurrence of each is kept, unfolded and whitespace-normalised.
KEPT_HEADERS: tuple[str, ...] = (
    # mailing lists and bulk senders (RFC 2369, RFC 2919, RFC 8058; Precedence is de facto)
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-id",
    "list-post",
    "precedence",
    "feedback-id",  # Gmail's bulk-sender feedback loop id: set by ESPs
    # automatic replies and notifications (RFC 3834; Microsoft and older autoresponders)
    "auto-submitted",
    "x-autoreply",
    "x-autorespond",
    "x-auto-response-suppress",
    # who really sent it, and where answers go
    "sender",
    "reply-to",
    "return-path",
    # what produced it
    "content-type",
    "x-mailer",
    "user-agent",
)

# Defects that leave nothing readable start with one of these; `is_malformed` reports them.
EMPTY_MESSAGE = "empty message"
_NO_HEADERS = "no headers"
_BOUNDARY_NOT_FOUND = "multipart boundary never found"
_NO_BOUNDARY = "multipart without a boundary"
_UNREADABLE_BODY = "unreadable body"
_UNREADABLE_CALENDAR = "unreadable calendar part"
_PARSER_FAILED = "unreadable message"
_SERIOUS = (
    EMPTY_MESSAGE,
    _NO_HEADERS,
    _BOUNDARY_NOT_FOUND,
    _NO_BOUNDARY,
    _UNREADABLE_BODY,
    _UNREADABLE_CALENDAR,
    _PARSER_FAILED,
)

# Readable sentences for the email package's own defects; the boundary and separator defects
# are worded where they are detected, with context.
_DEFECT_TEXT: dict[type[errors.MessageDefect], str] = {
    errors.FirstHeaderLineIsContinuationDefect: "first header line is a continuation line",
    errors.MisplacedEnvelopeHeaderDefect: "mbox 'From ' line inside the headers",
    errors.InvalidMultipartContentTransferEncodingDefect: (
        "multipart with a Content-Transfer-Encoding other than 7bit/8bit/binary"
    ),
}
# Reported better elsewhere (our own base64 check), or implied by a defect already reported.
_DEFECTS_SKIPPED: tuple[type[errors.MessageDefect], ...] = (
    errors.MultipartInvariantViolationDefect,
    errors.InvalidBase64PaddingDefect,
    errors.InvalidBase64CharactersDefect,
    errors.InvalidBase64LengthDefect,
    errors.HeaderDefect,
)


@dataclass(frozen=True)
class ParsedMessage:
    sender: str | None = None  # From address, lower-cased
    sender_name: str | None = None  # From display name, decoded
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    subject: str | None = None
    date: datetime | None = None  # aware, UTC
    message_id: str | None = None  # as written, with its angle brackets: "<abc@mail.gmail.com>"
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # KEPT_HEADERS that are present
    body_text: str = ""
    calendar_parts: list[str] = field(default_factory=list)  # identical parts kept once
    attachment_names: list[str] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["date"] = self.date.isoformat() if self.date else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ParsedMessage:
        """The inverse of `to_json`; unknown keys (written by a newer version) are ignored."""
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        if values.get("date"):
            values["date"] = datetime.fromisoformat(values["date"])
        return cls(**values)


def is_malformed(parsed: ParsedMessage) -> str | None:
    """Why the message is too broken to process, or None. Odd but readable messages (unclosed
    multipart, unknown charset, no From header, broken attachment) are not malformed."""
    for defect in parsed.defects:
        if defect.startswith(_SERIOUS):
            return defect
    return None


def decode_gmail_raw(raw: str) -> bytes:
    """The bytes of `messages.get(format="raw")`'s `raw` field (base64url, padding optional)."""
    return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))


def parse_message(raw: bytes) -> ParsedMessage:
    """The fields of an RFC 822 message. Never raises: problems are listed in `defects`."""
    if not raw or not raw.strip():
        return ParsedMessage(defects=[EMPTY_MESSAGE])
    defects: list[str] = []
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception as exc:  # the email package is lenient, but not provably total
        return ParsedMessage(defects=[f"{_PARSER_FAILED}: {type(exc).__name__}: {exc}"])

    if any(isinstance(d, errors.MissingHeaderBodySeparatorDefect) for d in msg.defects):
        if not msg.keys():
            defects.append(
                f"{_NO_HEADERS}: the message does not start with headers (header/body separator missing)"
            )
        else:
            defects.append("header/body separator missing: a line in the header block is not a header")

    senders = _addresses(msg, "from", defects)
    if not msg.keys():
        pass  # already reported as "no headers"
    elif "from" not in msg:  # case-insensitive
        defects.append("no From header")
    elif not senders:
        defects.append("From header has no readable address")

    content = _Content()
    try:
        _collect(msg, content, defects)
    except Exception as exc:
        defects.append(f"{_PARSER_FAILED}: {type(exc).__name__} while reading the MIME parts: {exc}")

    date_value = _header(msg, "date")
    references = _message_ids(_header(msg, "references"))
    return ParsedMessage(
        sender=senders[0][0] if senders else None,
        sender_name=(senders[0][1] or None) if senders else None,
        to=[address for address, _ in _addresses(msg, "to", defects)],
        cc=[address for address, _ in _addresses(msg, "cc", defects)],
        subject=_header(msg, "subject"),
        date=_parse_date(date_value, defects),
        message_id=next(iter(_message_ids(_header(msg, "message-id"))), None),
        in_reply_to=next(iter(_message_ids(_header(msg, "in-reply-to"))), None),
        references=references,
        headers={name: value for name in KEPT_HEADERS if (value := _header(msg, name)) is not None},
        body_text=content.body_text(),
        calendar_parts=content.calendar_parts,
        attachment_names=content.attachment_names,
        defects=list(dict.fromkeys(defects)),
    )


# --- headers ---------------------------------------------------------------------------------


def _unsurrogate(text: str) -> str:
    """Raw 8-bit header bytes arrive as surrogate escapes: read them as UTF-8, else Latin-1."""
    if not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    data = text.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _raw_header(msg: Message, name: str) -> str | None:
    for key, value in msg.raw_items():
        if key.lower() == name:
            try:
                return str(make_header(decode_header(str(value))))
            except Exception:
                return str(value)
    return None


def _header(msg: Message, name: str) -> str | None:
    """The first `name` header, decoded (RFC 2047), unfolded and whitespace-normalised."""
    try:
        value = msg.get(name)
        text = None if value is None else str(value)
    except Exception:  # the strict header parser can fail on garbage: read it raw
        text = _raw_header(msg, name)
    if text is None:
        return None
    return " ".join(_unsurrogate(text).split())[:HEADER_VALUE_LIMIT]


def _clean_address(address: str) -> str:
    return _unsurrogate(address).strip().strip("<>\"'").strip().lower()


def _addresses(msg: Message, name: str, defects: list[str]) -> list[tuple[str, str]]:
    """(address, display name) of every address in every `name` header."""
    found: list[tuple[str, str]] = []
    try:
        for header in msg.get_all(name) or []:
            for address in header.addresses:
                found.append((_clean_address(address.addr_spec), _unsurrogate(address.display_name)))
    except Exception:
        raw = _raw_header(msg, name) or ""
        defects.append(f"{name.capitalize()} header could not be parsed strictly: {raw[:200]!r}")
        found = [(_clean_address(addr), display) for display, addr in email.utils.getaddresses([raw])]
    return [(address, " ".join(display.split())) for address, display in found if address]


def _message_ids(value: str | None) -> list[str]:
    if not value:
        return []
    return re.findall(r"<[^<>\s]+>", value) or value.split()


def _parse_date(value: str | None, defects: list[str]) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        defects.append(f"unreadable Date header: {value[:100]!r}")
        return None
    # "-0000" (and no zone at all) means "UTC, sender's local zone unknown" (RFC 5322 3.3).
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- MIME parts ------------------------------------------------------------------------------

_CALENDAR_TYPES = {"text/calendar", "application/ics"}
_QP_BAD_ESCAPE = re.compile(r"=(?![0-9A-Fa-f]{2}|[ \t]*(?:\r?\n|$))")
_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/]*={0,2}")


@dataclass
class _Content:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    calendar_parts: list[str] = field(default_factory=list)
    attachment_names: list[str] = field(default_factory=list)

    def body_text(self) -> str:
        if self.plain:
            text = "\n\n".join(self.plain)
        else:
            text = "\n\n".join(html_to_text(html) for html in self.html)
        return truncate_words(normalize_whitespace(text), BODY_TEXT_LIMIT)


def _collect(part: Message, content: _Content, defects: list[str]) -> None:
    """Walk the MIME tree depth-first, without descending into attached messages."""
    ctype = part.get_content_type()
    for defect in part.defects:
        defects.extend(_describe_defect(part, defect))
    if ctype.startswith("multipart/"):
        if part.is_multipart():
            for child in part.get_payload():
                _collect(child, content, defects)
        return  # a multipart whose boundary is missing or never found: reported above
    filename = _filename(part)
    if ctype == "message/rfc822" or part.is_multipart():
        if filename:
            content.attachment_names.append(filename)
        return
    disposition = part.get_content_disposition()
    if filename:
        content.attachment_names.append(filename)
    if ctype in _CALENDAR_TYPES or (filename or "").lower().endswith(".ics"):
        text = _decode_text(part, f"{ctype} part", _UNREADABLE_CALENDAR, defects)
        # One line ending whatever the transport used (base64 keeps CRLF, 8bit/QP follow the message).
        text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
        if len(text) > CALENDAR_PART_LIMIT:
            defects.append(f"{ctype} part truncated to {CALENDAR_PART_LIMIT} characters")
            text = text[:CALENDAR_PART_LIMIT]
        if text and text not in content.calendar_parts:  # Google sends the invite twice
            content.calendar_parts.append(text)
    elif ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename:
        text = _decode_text(part, f"{ctype} part", _UNREADABLE_BODY, defects)
        (content.plain if ctype == "text/plain" else content.html).append(text)
    elif filename:
        _check_transfer_encoding(part, f"attachment {filename}", None, defects)


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        return None
    return (" ".join(_unsurrogate(name).split()) or None) if name else None


def _describe_defect(part: Message, defect: errors.MessageDefect) -> list[str]:
    ctype = part.get_content_type()
    boundary = part.get_param("boundary")
    if isinstance(defect, errors.StartBoundaryNotFoundDefect):
        return [f"{_BOUNDARY_NOT_FOUND}: the {ctype} boundary {boundary!r} never appears in its body"]
    if isinstance(defect, errors.NoBoundaryInMultipartDefect):
        return [f"{_NO_BOUNDARY}: {ctype} has no boundary parameter, its parts cannot be told apart"]
    if isinstance(defect, errors.CloseBoundaryNotFoundDefect):
        return [f"{ctype} boundary {boundary!r} is never closed; its parts are read as far as they go"]
    if isinstance(defect, (errors.MissingHeaderBodySeparatorDefect, *_DEFECTS_SKIPPED)):
        return []  # the separator is worded by parse_message; the others are implied or re-checked
    text = _DEFECT_TEXT.get(type(defect)) or f"{type(defect).__name__.removesuffix('Defect')}: {defect}"
    return [f"{ctype} part: {text}"]


def _check_transfer_encoding(part: Message, label: str, serious: str | None, defects: list[str]) -> None:
    """Report a body that its Content-Transfer-Encoding cannot decode. Python decodes both
    leniently (dropping what it cannot read), so the check is done on the encoded text."""
    payload = part.get_payload()
    if not isinstance(payload, str):
        return
    cte = str(part.get("content-transfer-encoding", "")).strip().lower()
    prefix = f"{serious}: " if serious else ""
    if cte == "base64":
        compact = "".join(payload.split())
        if not _BASE64_TEXT.fullmatch(compact):
            defects.append(f"{prefix}invalid base64 in the {label} (characters outside the base64 alphabet)")
        elif len(compact.rstrip("=")) % 4 == 1:
            defects.append(f"{prefix}invalid base64 in the {label} (truncated: impossible length)")
    elif cte == "quoted-printable" and _QP_BAD_ESCAPE.search(payload):
        # Decoders keep a stray "=" as it is: readable, so never serious.
        defects.append(f"invalid quoted-printable escape in the {label}")


def _decode_text(part: Message, label: str, serious: str, defects: list[str]) -> str:
    _check_transfer_encoding(part, label, serious, defects)
    data = part.get_payload(decode=True) or b""
    charset = part.get_content_charset() or "us-ascii"
    try:
        codecs.lookup(charset)
    except LookupError:
        defects.append(f"unknown charset {charset!r} in the {label}; read as UTF-8")
        charset = "utf-8"
    try:
        return data.decode(charset)
    except UnicodeDecodeError:
        pass
    # Mislabelled charsets are common (UTF-8 declared as us-ascii or latin-1 the other way).
    for fallback in ("utf-8", "cp1252"):
        try:
            text = data.decode(fallback)
        except UnicodeDecodeError:
            continue
        defects.append(f"the {label} is not valid {charset}; read as {fallback}")
        return text
    defects.append(f"the {label} is not valid {charset}; undecodable bytes replaced")
    return data.decode("utf-8", "replace")


# --- text ------------------------------------------------------------------------------------

# Invisible characters that newsletters pad their preview text with.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u034f\u00ad"))


def normalize_whitespace(text: str) -> str:
    """One space between words, lines kept, at most one blank line in a row, no edges."""
    lines = [" ".join(line.split()) for line in text.translate(_INVISIBLE).splitlines()]
    kept: list[str] = []
    for line in lines:
        if line or (kept and kept[-1]):
            kept.append(line)
    return "\n".join(kept).strip()


def truncate_words(text: str, limit: int) -> str:
    """At most `limit` characters, cut at the last whitespace (unless a word is that long)."""
    if len(text) <= limit:
        return text
    cut = max(text.rfind(" ", 0, limit + 1), text.rfind("\n", 0, limit + 1))
    return text[:cut].rstrip() if cut > limit // 2 else text[:limit]


class _HtmlText(HTMLParser):
    _SKIPPED = {"script", "style", "title", "noscript", "template"}
    _BREAKS = {"br", "p", "div", "tr", "li", "ul", "ol", "table", "blockquote", "hr", "pre", "section"}
    _BREAKS |= {"article", "header", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "dd", "dt"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIPPED:
            self._skipping += 1
        elif tag in self._BREAKS:
            self.chunks.append("\n")
        elif tag in ("td", "th"):
            self.chunks.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BREAKS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.chunks.append(data)


def html_to_text(html: str) -> str:
    """The visible text of an HTML body: tags dropped, entities decoded, blocks on own lines."""
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient; keep whatever it read
        pass
    return normalize_whitespace("".join(parser.chunks))
