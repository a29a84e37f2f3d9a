"""Gmail v1 state and semantics: one mailbox per user with messages, threads, labels, the history
log and the Pub/Sub watch.

Every change to a mailbox (a message added or deleted, labels added or removed) takes the next
value of the mailbox's change feed (`core.change_feed`): that number is the change's history
record id and the mailbox's new `historyId`, so history ids increase per mailbox. `history.list`
returns the records after a `startHistoryId`; a start older than the oldest record kept (see
`expire_history`) answers 404, as Gmail does, and the client must sync in full. A watched
mailbox publishes `{"emailAddress", "historyId"}` to its watch's topic on each change
(`World.pubsub_publish`, delivered in the background).

Seeded mail is stored without history records, and the mailbox's history starts after it.
All methods take the world lock.
"""

from __future__ import annotations

import bisect
import email.message
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sunny_pipelines.sandbox.core.change_feed import ChangeFeed
from sunny_pipelines.sandbox.core.common import ApiError, bad_request, not_found
from sunny_pipelines.sandbox.core.pubsub import parse_topic
from sunny_pipelines.sandbox.services.gmail import mime
from sunny_pipelines.sandbox.services.gmail.query import parse_query

if TYPE_CHECKING:
    from sunny_pipelines.sandbox.core.accounts import User
    from sunny_pipelines.sandbox.world import World

GMAIL_READ_SCOPES = frozenset(
    {
        "https://mail.google.com/",
        "https://www.googleapis.com/auth/gmail.modify",
        "https://www.googleapis.com/auth/gmail.readonly",
        "https://www.googleapis.com/auth/gmail.metadata",
    }
)
GMAIL_WRITE_SCOPES = frozenset({"https://mail.google.com/", "https://www.googleapis.com/auth/gmail.modify"})
GMAIL_INSERT_SCOPES = GMAIL_WRITE_SCOPES | {"https://www.googleapis.com/auth/gmail.insert"}
GMAIL_SEND_SCOPES = GMAIL_WRITE_SCOPES | {"https://www.googleapis.com/auth/gmail.send"}

NOT_FOUND = "Requested entity was not found."
MAX_PAGE = 500
DEFAULT_PAGE = 100
WATCH_TTL_MS = 7 * 86400 * 1000  # Gmail watches last 7 days
MAX_HISTORY_RECORDS = 20000  # older records are dropped (and their ids answer 404), as Gmail forgets

# (id, name, shown in the message list, shown in the label list); CATEGORY_* have no visibility.
SYSTEM_LABELS: list[tuple[str, str | None, str | None]] = [
    ("CHAT", "hide", "labelHide"),
    ("SENT", "hide", "labelHide"),
    ("INBOX", "hide", "labelShow"),
    ("IMPORTANT", "hide", "labelShowIfUnread"),
    ("TRASH", "hide", "labelHide"),
    ("DRAFT", "hide", "labelShowIfUnread"),
    ("SPAM", "hide", "labelHide"),
    ("CATEGORY_FORUMS", None, None),
    ("CATEGORY_UPDATES", None, None),
    ("CATEGORY_PERSONAL", None, None),
    ("CATEGORY_PROMOTIONS", None, None),
    ("CATEGORY_SOCIAL", None, None),
    ("STARRED", "hide", "labelHide"),
    ("UNREAD", "hide", "labelHide"),
]
SYSTEM_LABEL_IDS = frozenset(label for label, _, _ in SYSTEM_LABELS)
USER_LABELS = ["Receipts", "Projects/Atlas", "Follow up", "Travel"]
HISTORY_TYPES = {
    "messageAdded": "messagesAdded",
    "messageDeleted": "messagesDeleted",
    "labelAdded": "labelsAdded",
    "labelRemoved": "labelsRemoved",
}


# ---------------------------------------------------------------- data


@dataclass
class StoredMessage:
    id: str
    thread_id: str
    raw: bytes
    internal_ms: int
    labels: list[str]
    history_id: int
    rfc_id: str = ""  # the Message-ID header
    _parsed: email.message.Message | None = None
    _meta: dict[str, Any] | None = None

    @property
    def parsed(self) -> email.message.Message:
        # Parsed on first use: seeding stores thousands of messages that may never be read.
        if self._parsed is None:
            self._parsed = mime.parse(self.raw)
        return self._parsed

    @property
    def meta(self) -> dict[str, Any]:
        """from / to / cc / subject / snippet / has_attachment, for queries, snippets and truth."""
        if self._meta is None:
            msg = self.parsed
            self._meta = {
                "from": mime.first_header(msg, "From"),
                "to": mime.first_header(msg, "To"),
                "cc": mime.first_header(msg, "Cc"),
                "subject": mime.first_header(msg, "Subject"),
                "snippet": mime.snippet_of(msg),
                "has_attachment": any(p.get_filename() for p in msg.walk() if not p.is_multipart()),
            }
        return self._meta

    def ref(self) -> dict[str, Any]:
        """The message as history records show it."""
        return {"id": self.id, "threadId": self.thread_id, "labelIds": list(self.labels)}

    @property
    def sort_key(self) -> tuple[int, str]:
        return (self.internal_ms, self.id)


@dataclass
class HistoryRecord:
    id: int
    message: dict[str, str]  # {id, threadId}
    # messagesAdded | messagesDeleted | labelsAdded / labelsRemoved (a modify may hold both) -> entry
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)

    def out(self, kinds: set[str] | None) -> dict[str, Any] | None:
        selected = {k: v for k, v in self.entries.items() if kinds is None or k in kinds}
        if not selected:
            return None
        out: dict[str, Any] = {"id": str(self.id), "messages": [dict(self.message)]}
        for kind, entry in selected.items():
            out[kind] = [entry]
        return out

    def labels(self) -> set[str]:
        """Every label the record's message had or gained or lost in this change."""
        found: set[str] = set()
        for entry in self.entries.values():
            found.update(entry["message"].get("labelIds", ()))
            found.update(entry.get("labelIds", ()))
        return found


@dataclass
class Watch:
    topic: str
    label_ids: frozenset[str]
    behavior: str  # include | exclude
    expiration_ms: int


@dataclass
class Mailbox:
    user_id: str
    email: str
    feed: ChangeFeed  # feed.seq is the mailbox's current historyId
    history_floor: int  # the oldest startHistoryId history.list still answers
    messages: dict[str, StoredMessage] = field(default_factory=dict)
    threads: dict[str, set[str]] = field(default_factory=dict)  # thread id -> message ids
    by_rfc_id: dict[str, str] = field(default_factory=dict)  # Message-ID header -> thread id
    history: list[HistoryRecord] = field(default_factory=list)
    history_ids: list[int] = field(default_factory=list)  # parallel to `history`, for bisect
    user_labels: dict[str, str] = field(default_factory=dict)  # label id -> name
    watch: Watch | None = None

    @property
    def history_id(self) -> int:
        return self.feed.seq


def _not_found() -> ApiError:
    return not_found(NOT_FOUND)


def _history_gone() -> ApiError:
    return not_found(NOT_FOUND)


# ---------------------------------------------------------------- the store


class GmailStore:
    def __init__(self, world: World) -> None:
        self.world = world
        self.mailboxes: dict[str, Mailbox] = {}  # by user id

    # -- mailboxes ----------------------------------------------------------------------------------------

    def create_mailbox(self, user: User) -> Mailbox:
        with self.world.lock:
            # History ids start somewhere in the thousands, different per user, as real ones differ.
            start = 1000 + int(hashlib.sha256(user.email.encode()).hexdigest()[:6], 16) % 90000
            feed = ChangeFeed("gmail-history", user.id, self.world.codec, expired=_history_gone, seq=start)
            box = Mailbox(user.id, user.email, feed, history_floor=start)
            for n, name in enumerate(USER_LABELS, start=1):
                box.user_labels[f"Label_{n}"] = name
            self.mailboxes[user.id] = box
            return box

    def mailbox(self, user: User) -> Mailbox:
        box = self.mailboxes.get(user.id)
        return box if box is not None else self.create_mailbox(user)

    def _message(self, box: Mailbox, message_id: str) -> StoredMessage:
        msg = box.messages.get(message_id)
        if msg is None:
            raise _not_found()
        return msg

    def label_names(self, box: Mailbox) -> dict[str, str]:
        """Lowercased label names and ids -> label id (for `label:` queries)."""
        names = {label.lower(): label for label in SYSTEM_LABEL_IDS}
        for label_id, name in box.user_labels.items():
            names[name.lower()] = label_id
            names[label_id.lower()] = label_id
        return names

    def check_labels(self, box: Mailbox, label_ids: Any) -> list[str]:
        if label_ids is None:
            return []
        if not isinstance(label_ids, list) or not all(isinstance(x, str) for x in label_ids):
            raise bad_request("Invalid label ids")
        for label_id in label_ids:
            if label_id not in SYSTEM_LABEL_IDS and label_id not in box.user_labels:
                raise bad_request(f"Invalid label: {label_id}")
        return list(dict.fromkeys(label_ids))

    # -- changes ------------------------------------------------------------------------------------------

    def _record(
        self, box: Mailbox, msg: StoredMessage, entries: dict[str, dict[str, Any]], record: bool
    ) -> int:
        seq = box.feed.advance()
        msg.history_id = seq
        if record:
            rec = HistoryRecord(seq, {"id": msg.id, "threadId": msg.thread_id}, entries)
            box.history.append(rec)
            box.history_ids.append(seq)
            if len(box.history) > MAX_HISTORY_RECORDS:
                drop = len(box.history) - MAX_HISTORY_RECORDS
                box.history_floor = box.history_ids[drop - 1]
                del box.history[:drop], box.history_ids[:drop]
            self._publish(box, seq, rec.labels())
        return seq

    def _publish(self, box: Mailbox, seq: int, labels: set[str]) -> None:
        watch = box.watch
        if watch is None or watch.expiration_ms <= self.world.now() * 1000:
            return
        if watch.label_ids:
            hit = bool(labels & watch.label_ids)
            if (watch.behavior == "include") != hit:
                return
        # Real pushes carry the history id as a number; the receiver accepts both. A string keeps
        # uint64 ids exact for every JSON reader.
        self.world.pubsub_publish(watch.topic, {"emailAddress": box.email, "historyId": str(seq)})

    def _new_id(self, box: Mailbox, internal_ms: int, bits: int | None = None) -> str:
        # Gmail ids are 16 hex digits that grow with time; the low bits tell apart messages of one ms.
        low = secrets.randbits(20) if bits is None else bits
        number = (max(internal_ms, 0) << 20) | low
        while f"{number:016x}" in box.messages:
            number += 1
        return f"{number:016x}"

    def add_message(
        self,
        box: Mailbox,
        raw: bytes,
        label_ids: list[str],
        internal_ms: int,
        thread_id: str | None = None,
        seeded: tuple[str, int] | None = None,
    ) -> StoredMessage:
        """Store a message. Its thread: `thread_id` if that thread exists, else the thread of a
        message its In-Reply-To / References name (when the subjects agree), else a new thread.

        `seeded=(Message-ID, id bits)`: seeding, which knows the thread and the Message-ID (no parse)
        and leaves no history record."""
        with self.world.lock:
            message_id = self._new_id(box, internal_ms, seeded[1] if seeded else None)
            parsed = None
            if seeded is not None:
                rfc_id = seeded[0]
            else:
                parsed = mime.parse(raw)
                rfc_id = (mime.message_ids(str(parsed.get("Message-ID", ""))) or [""])[0]
                if thread_id not in box.threads:
                    thread_id = self._thread_for(box, parsed)
            thread_id = thread_id or message_id
            msg = StoredMessage(message_id, thread_id, raw, internal_ms, list(label_ids), 0, rfc_id, parsed)
            box.messages[message_id] = msg
            box.threads.setdefault(thread_id, set()).add(message_id)
            if rfc_id:
                box.by_rfc_id.setdefault(rfc_id, thread_id)
            self._record(box, msg, {"messagesAdded": {"message": msg.ref()}}, record=seeded is None)
            return msg

    def _thread_for(self, box: Mailbox, parsed: email.message.Message) -> str | None:
        refs = mime.message_ids(str(parsed.get("References", ""))) + mime.message_ids(
            str(parsed.get("In-Reply-To", ""))
        )
        subject = mime.normalized_subject(mime.first_header(parsed, "Subject"))
        for ref in reversed(refs):
            thread_id = box.by_rfc_id.get(ref)
            if thread_id is None or thread_id not in box.threads:
                continue
            # Gmail threads a reply only when its subject still matches the thread's.
            first = box.messages[min(box.threads[thread_id], key=lambda i: box.messages[i].sort_key)]
            theirs = mime.normalized_subject(first.meta["subject"])
            if not subject or not theirs or subject == theirs:
                return thread_id
        return None

    def change_labels(
        self, box: Mailbox, message_id: str, add: list[str], remove: list[str]
    ) -> StoredMessage:
        with self.world.lock:
            msg = self._message(box, message_id)
            add = [x for x in self.check_labels(box, add) if x not in msg.labels]
            remove_set = set(self.check_labels(box, remove)) - set(add)
            removed = [x for x in msg.labels if x in remove_set]
            if not add and not removed:
                return msg
            msg.labels = [x for x in msg.labels if x not in remove_set] + add
            entries: dict[str, dict[str, Any]] = {}
            if add:
                entries["labelsAdded"] = {"message": msg.ref(), "labelIds": add}
            if removed:
                entries["labelsRemoved"] = {"message": msg.ref(), "labelIds": removed}
            self._record(box, msg, entries, True)
            return msg

    def delete_message(self, box: Mailbox, message_id: str) -> None:
        with self.world.lock:
            msg = self._message(box, message_id)
            del box.messages[message_id]
            thread = box.threads.get(msg.thread_id)
            if thread is not None:
                thread.discard(message_id)
                if not thread:
                    del box.threads[msg.thread_id]
            self._record(box, msg, {"messagesDeleted": {"message": msg.ref()}}, True)

    def expire_history(self, user: User) -> None:
        """Gmail forgot this mailbox's history: any older startHistoryId answers 404 from now on."""
        with self.world.lock:
            box = self.mailbox(user)
            box.history.clear()
            box.history_ids.clear()
            box.history_floor = box.history_id

    def end_seeding(self, box: Mailbox) -> None:
        """The mailbox's history starts now (seeded mail has no history records)."""
        box.history_floor = box.history_id

    # -- reads ------------------------------------------------------------------------------------------

    def profile(self, user: User) -> dict[str, Any]:
        with self.world.lock:
            box = self.mailbox(user)
            return {
                "emailAddress": user.email,
                "messagesTotal": len(box.messages),
                "threadsTotal": len(box.threads),
                "historyId": str(box.history_id),
            }

    def list_messages(self, user: User, params: dict[str, Any]) -> dict[str, Any]:
        with self.world.lock:
            box = self.mailbox(user)
            label_ids = self.check_labels(box, params.get("labelIds") or None)
            query = parse_query(params.get("q"), self.world.now(), user.timezone, self.label_names(box))
            spam_trash = (
                params.get("includeSpamTrash") or query.spam_trash or bool({"SPAM", "TRASH"} & set(label_ids))
            )
            after: tuple[int, str] | None = None
            token = params.get("pageToken")
            if token:
                page = self.world.codec.decode(token)
                if not page or page.get("kind") != "gmail-messages" or page.get("user") != user.id:
                    raise bad_request("Invalid pageToken")
                after = (int(page["after"][0]), str(page["after"][1]))
            matches = [
                m
                for m in box.messages.values()
                if (spam_trash or not ({"SPAM", "TRASH"} & set(m.labels)))
                and all(label in m.labels for label in label_ids)
                and query.matches(m)
            ]
            matches.sort(key=lambda m: m.sort_key, reverse=True)  # newest first
            if after is not None:
                start = next((i for i, m in enumerate(matches) if m.sort_key < after), len(matches))
                matches_page = matches[start:]
            else:
                matches_page = matches
            size = min(max(int(params.get("maxResults") or DEFAULT_PAGE), 1), MAX_PAGE)
            chosen = matches_page[:size]
            out: dict[str, Any] = {}
            if chosen:
                out["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in chosen]
            if len(matches_page) > size:
                last = chosen[-1]
                out["nextPageToken"] = self.world.codec.encode(
                    {"kind": "gmail-messages", "user": user.id, "after": [last.internal_ms, last.id]}
                )
            out["resultSizeEstimate"] = len(matches)
            return out

    def message_resource(
        self, msg: StoredMessage, fmt: str, metadata_headers: list[str] | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": msg.id,
            "threadId": msg.thread_id,
            "labelIds": list(msg.labels),
            "snippet": msg.meta["snippet"],
        }
        if fmt == "metadata":
            wanted = {h.lower() for h in metadata_headers or []}
            headers = [h for h in mime.headers_of(msg.parsed) if not wanted or h["name"].lower() in wanted]
            out["payload"] = {
                "partId": "",
                "mimeType": msg.parsed.get_content_type(),
                "filename": "",
                "headers": headers,
            }
        elif fmt == "full":
            codec = self.world.codec
            out["payload"] = mime.payload_of(
                msg.parsed,
                lambda part_id: codec.encode({"kind": "gmail-attachment", "m": msg.id, "p": part_id}),
            )
        out["sizeEstimate"] = len(msg.raw)
        out["historyId"] = str(msg.history_id)
        out["internalDate"] = str(msg.internal_ms)
        if fmt == "raw":
            out["raw"] = mime.b64url(msg.raw)
        return out

    def get_message(
        self, user: User, message_id: str, fmt: str, metadata_headers: list[str] | None
    ) -> dict[str, Any]:
        if fmt not in ("full", "metadata", "minimal", "raw"):
            raise bad_request(f"Invalid value at 'format' ({fmt})")
        with self.world.lock:
            msg = self._message(self.mailbox(user), message_id)
            return self.message_resource(msg, fmt, metadata_headers)

    def get_attachment(self, user: User, message_id: str, attachment_id: str) -> dict[str, Any]:
        with self.world.lock:
            msg = self._message(self.mailbox(user), message_id)
            ref = self.world.codec.decode(attachment_id)
            if not ref or ref.get("kind") != "gmail-attachment" or ref.get("m") != message_id:
                raise bad_request("Invalid attachment token")
            part = mime.find_part(msg.parsed, str(ref.get("p", "")))
            if part is None:
                raise _not_found()
            data = mime.part_bytes(part)
            return {"attachmentId": attachment_id, "size": len(data), "data": mime.b64url(data)}

    def get_thread(
        self, user: User, thread_id: str, fmt: str, metadata_headers: list[str] | None
    ) -> dict[str, Any]:
        with self.world.lock:
            box = self.mailbox(user)
            ids = box.threads.get(thread_id)
            if not ids:
                raise _not_found()
            msgs = sorted((box.messages[i] for i in ids), key=lambda m: m.sort_key)
            return {
                "id": thread_id,
                "historyId": str(max(m.history_id for m in msgs)),
                "messages": [self.message_resource(m, fmt, metadata_headers) for m in msgs],
            }

    def labels(self, user: User) -> list[dict[str, Any]]:
        with self.world.lock:
            box = self.mailbox(user)
            out = []
            for label_id, msg_vis, list_vis in SYSTEM_LABELS:
                label: dict[str, Any] = {"id": label_id, "name": label_id}
                if msg_vis:
                    label["messageListVisibility"] = msg_vis
                    label["labelListVisibility"] = list_vis
                label["type"] = "system"
                out.append(label)
            for label_id, name in box.user_labels.items():
                out.append(
                    {
                        "id": label_id,
                        "name": name,
                        "messageListVisibility": "show",
                        "labelListVisibility": "labelShow",
                        "type": "user",
                    }
                )
            return out

    def label(self, user: User, label_id: str) -> dict[str, Any]:
        with self.world.lock:
            box = self.mailbox(user)
            found = next((lab for lab in self.labels(user) if lab["id"] == label_id), None)
            if found is None:
                raise _not_found()
            in_label = [m for m in box.messages.values() if label_id in m.labels]
            threads = {m.thread_id for m in in_label}
            unread = [m for m in in_label if "UNREAD" in m.labels]
            found.update(
                messagesTotal=len(in_label),
                messagesUnread=len(unread),
                threadsTotal=len(threads),
                threadsUnread=len({m.thread_id for m in unread}),
            )
            return found

    def list_history(self, user: User, params: dict[str, Any]) -> dict[str, Any]:
        raw_start = params.get("startHistoryId")
        if not raw_start or not re.fullmatch(r"\d{1,20}", str(raw_start)):
            raise bad_request("Invalid startHistoryId" if raw_start else "Missing startHistoryId")
        start = int(raw_start)
        kinds = None
        if params.get("historyTypes"):
            try:
                kinds = {HISTORY_TYPES[t] for t in params["historyTypes"]}
            except KeyError as exc:
                raise bad_request(f"Invalid value at 'history_types' ({exc.args[0]})") from None
        label_id = params.get("labelId")
        with self.world.lock:
            box = self.mailbox(user)
            snapshot, after = box.history_id, start
            token = params.get("pageToken")
            if token:
                page = self.world.codec.decode(token)
                if not page or page.get("kind") != "gmail-history" or page.get("user") != user.id:
                    raise bad_request("Invalid pageToken")
                snapshot, after = int(page["snapshot"]), int(page["after"])
            # The 404 rule: a start older than the oldest history kept (or in the future).
            if start < box.history_floor or start > box.history_id:
                raise _history_gone()
            size = min(max(int(params.get("maxResults") or DEFAULT_PAGE), 1), MAX_PAGE)
            records: list[dict[str, Any]] = []
            last = after
            more = False
            for rec in box.history[bisect.bisect_right(box.history_ids, after) :]:
                if rec.id > snapshot:
                    break
                if label_id and label_id not in rec.labels():
                    continue
                shown = rec.out(kinds)
                if shown is None:
                    continue
                if len(records) == size:
                    more = True
                    break
                records.append(shown)
                last = rec.id
            out: dict[str, Any] = {}
            if records:
                out["history"] = records
            if more:
                out["nextPageToken"] = self.world.codec.encode(
                    {"kind": "gmail-history", "user": user.id, "snapshot": snapshot, "after": last}
                )
            # The snapshot, not the live id: a change made while paging is left for the next sync.
            out["historyId"] = str(snapshot)
            return out

    def truth(self, user: User) -> dict[str, Any]:
        with self.world.lock:
            box = self.mailbox(user)
            msgs = sorted(box.messages.values(), key=lambda m: m.sort_key, reverse=True)
            return {
                "historyId": str(box.history_id),
                "messages": [
                    {
                        "id": m.id,
                        "threadId": m.thread_id,
                        "labelIds": list(m.labels),
                        "snippet": m.meta["snippet"],
                        "internalDate": str(m.internal_ms),
                        "from": m.meta["from"],
                        "to": m.meta["to"],
                        "subject": m.meta["subject"],
                    }
                    for m in msgs
                ],
            }

    # -- watch ---------------------------------------------------------------------------------------------

    def watch(self, user: User, body: dict[str, Any]) -> dict[str, Any]:
        topic = body.get("topicName")
        if not isinstance(topic, str):
            raise bad_request("Invalid topicName does not match projects/SOME-PROJECT/topics/SOME-TOPIC")
        try:
            parse_topic(topic)
        except ValueError:
            raise bad_request(
                "Invalid topicName does not match projects/SOME-PROJECT/topics/SOME-TOPIC"
            ) from None
        behavior = body.get("labelFilterBehavior") or body.get("labelFilterAction") or "include"
        if str(behavior).lower() not in ("include", "exclude"):
            raise bad_request(f"Invalid labelFilterBehavior: {behavior}")
        with self.world.lock:
            box = self.mailbox(user)
            label_ids = self.check_labels(box, body.get("labelIds"))
            expiration = int(self.world.now() * 1000) + WATCH_TTL_MS
            box.watch = Watch(topic, frozenset(label_ids), str(behavior).lower(), expiration)
            return {"historyId": str(box.history_id), "expiration": str(expiration)}

    def stop(self, user: User) -> None:
        with self.world.lock:
            self.mailbox(user).watch = None
