"""Gmail's search syntax (`q`), the part a sync uses: `newer_than:`, `older_than:`, `after:`,
`before:`, `in:`, `is:`, `label:`, `category:`, `from:`, `to:`, `subject:`, `has:attachment`,
`rfc822msgid:`, bare words, quoted phrases and `-` negation. Terms are ANDed; `OR` and braces are
not supported (an `OR` is ignored)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sunny_pipelines.sandbox.core.common import bad_request, get_zone

if TYPE_CHECKING:
    from sunny_pipelines.sandbox.services.gmail.store import StoredMessage

_TOKEN = re.compile(r'-?[\w.]+:"[^"]*"|-?"[^"]*"|\S+')
_AGE = re.compile(r"^(\d+)([dmyh])$")
_AGE_SECONDS = {"h": 3600, "d": 86400, "m": 31 * 86400, "y": 366 * 86400}
_IN = {
    "inbox": "INBOX",
    "sent": "SENT",
    "trash": "TRASH",
    "spam": "SPAM",
    "drafts": "DRAFT",
    "draft": "DRAFT",
    "starred": "STARRED",
    "important": "IMPORTANT",
    "unread": "UNREAD",
    "chats": "CHAT",
}
_CATEGORIES = {
    "primary": "CATEGORY_PERSONAL",
    "personal": "CATEGORY_PERSONAL",
    "social": "CATEGORY_SOCIAL",
    "promotions": "CATEGORY_PROMOTIONS",
    "updates": "CATEGORY_UPDATES",
    "forums": "CATEGORY_FORUMS",
}

Predicate = Callable[["StoredMessage"], bool]


@dataclass
class Query:
    predicates: list[Predicate]
    spam_trash: bool  # the query asks for SPAM / TRASH (in:trash, in:anywhere, label:spam)

    def matches(self, message: StoredMessage) -> bool:
        return all(p(message) for p in self.predicates)


def _has_label(label_id: str) -> Predicate:
    return lambda m: label_id in m.labels


def _time_bound(value: str, tz: str) -> float:
    """Epoch seconds of an `after:` / `before:` value: epoch seconds or a date (yyyy/mm/dd)."""
    if value.isdigit():
        return float(value)
    match = re.match(r"^(\d{4})[/-](\d{1,2})[/-](\d{1,2})$", value)
    if not match:
        raise bad_request(f"Invalid date in query: {value}")
    year, month, day = (int(g) for g in match.groups())
    try:
        return datetime(year, month, day, tzinfo=get_zone(tz)).timestamp()
    except ValueError:
        raise bad_request(f"Invalid date in query: {value}") from None


def parse_query(q: str | None, now: float, tz: str, label_ids_by_name: dict[str, str]) -> Query:
    """Compile `q` into predicates over stored messages; `label_ids_by_name` maps lowercased label
    names (and ids) to label ids."""
    predicates: list[Predicate] = []
    spam_trash = False
    for token in _TOKEN.findall(q or ""):
        negate = token.startswith("-") and len(token) > 1
        if negate:
            token = token[1:]
        if token.upper() in ("OR", "AND"):
            continue
        key, sep, value = token.partition(":")
        key = key.lower() if sep else ""
        value = value.strip('"') if sep else token.strip('"')
        lowered = value.lower()
        pred: Predicate
        if key in ("newer_than", "older_than"):
            match = _AGE.match(lowered)
            if not match:
                raise bad_request(f"Invalid {key} value: {value}")
            limit_ms = (now - int(match.group(1)) * _AGE_SECONDS[match.group(2)]) * 1000
            if key == "newer_than":
                pred = lambda m, t=limit_ms: m.internal_ms > t  # noqa: E731
            else:
                pred = lambda m, t=limit_ms: m.internal_ms < t  # noqa: E731
        elif key in ("after", "before"):
            bound_ms = _time_bound(lowered, tz) * 1000
            if key == "after":
                pred = lambda m, t=bound_ms: m.internal_ms >= t  # noqa: E731
            else:
                pred = lambda m, t=bound_ms: m.internal_ms < t  # noqa: E731
        elif key in ("in", "is"):
            if lowered in ("anywhere", "all"):
                spam_trash = True
                continue
            if lowered == "read":
                pred = lambda m: "UNREAD" not in m.labels  # noqa: E731
            elif lowered in _IN:
                spam_trash = spam_trash or (_IN[lowered] in ("TRASH", "SPAM") and not negate)
                pred = _has_label(_IN[lowered])
            else:
                pred = _has_label(label_ids_by_name.get(lowered, value))
        elif key == "label":
            wanted = label_ids_by_name.get(lowered) or label_ids_by_name.get(lowered.replace("-", " "))
            wanted = wanted or label_ids_by_name.get(lowered.replace("-", "/")) or value
            spam_trash = spam_trash or (wanted in ("TRASH", "SPAM") and not negate)
            pred = _has_label(wanted)
        elif key == "category":
            pred = _has_label(_CATEGORIES.get(lowered, "CATEGORY_" + value.upper()))
        elif key in ("from", "to", "subject", "cc"):
            pred = lambda m, k=key, v=lowered: v in m.meta[k].lower()  # noqa: E731
        elif key == "has":
            if lowered != "attachment":
                continue  # has:drive, has:youtube... are not emulated
            pred = lambda m: m.meta["has_attachment"]  # noqa: E731
        elif key == "rfc822msgid":
            pred = lambda m, v=value.strip("<>"): m.rfc_id.strip("<>") == v  # noqa: E731
        else:
            word = token.strip('"').lower()
            pred = lambda m, w=word: any(w in m.meta[f].lower() for f in ("subject", "snippet", "from", "to"))  # noqa: E731
        predicates.append((lambda m, p=pred: not p(m)) if negate else pred)
    return Query(predicates, spam_trash)
