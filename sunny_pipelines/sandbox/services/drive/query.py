"""Drive's search language (`files.list(q=...)`): the part of it the sandbox understands.

Terms (combined with `and`, `or`, `not` and parentheses, as at Google):

- `name = 'x'`, `name != 'x'`, `name contains 'x'` (case-insensitive, matching at the start of a word:
  Google's `contains` is a prefix match on a name's words);
- `mimeType = 'x'`, `mimeType != 'x'`, `mimeType contains 'x'`;
- `trashed = true|false`, `starred = true|false` (also `!=`);
- `'<id>' in parents` (`'root'` names the caller's My Drive), `'<email>' in owners|writers|readers`
  (`'me'` names the caller);
- `modifiedTime` / `createdTime` compared (`<`, `<=`, `=`, `!=`, `>`, `>=`) with an RFC 3339 string
  (a time without offset is UTC, as at Google);
- `fullText contains 'x'` (name, description and text content), and the bare term `sharedWithMe`.

`parse(q)` compiles a query into a predicate over a file's searchable attributes (a mapping built by
the store: see `DriveStore._searchable`); anything else raises `QueryError`, which the API answers like
Google: 400 `invalid` "Invalid Value" on parameter `q`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*')
      | (?P<op><=|>=|!=|=|<|>|\(|\))
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_COMPARE = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_STRING_FIELDS = ("name", "mimeType")
_BOOL_FIELDS = ("trashed", "starred")
_TIME_FIELDS = ("modifiedTime", "createdTime")
_COLLECTION_FIELDS = ("parents", "owners", "writers", "readers")


class QueryError(ValueError):
    """A `q` the sandbox cannot read (Google answers 400 Invalid Value)."""


def _tokens(q: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    q = q.rstrip()
    while pos < len(q):
        m = _TOKEN.match(q, pos)
        if m is None or m.end() == pos:
            raise QueryError(f"cannot read the query at {q[pos:]!r}")
        kind = m.lastgroup or ""
        text = m.group(kind)
        if kind == "string":
            text = re.sub(r"\\(.)", r"\1", text[1:-1])  # \' and \\ are the escapes Drive documents
        out.append((kind, text))
        pos = m.end()
    return out


def _contains_word_prefix(haystack: str, needle: str) -> bool:
    return re.search(r"(?<![0-9a-z])" + re.escape(needle.lower()), haystack.lower()) is not None


def _timestamp(text: str) -> float:
    try:
        dt = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise QueryError(f"not a time: {text!r}") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


class _Parser:
    def __init__(self, q: str) -> None:
        self.tokens = _tokens(q)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, kind: str | None = None, text: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (kind and tok[0] != kind) or (text and tok[1].lower() != text.lower()):
            raise QueryError(f"expected {text or kind}, found {tok[1] if tok else 'the end'!r}")
        self.i += 1
        return tok[1]

    def at_word(self, word: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == "word" and tok[1].lower() == word

    def parse(self) -> Predicate:
        pred = self.or_expr()
        if self.peek() is not None:
            raise QueryError(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return pred

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.at_word("or"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda doc: any(p(doc) for p in parts))

    def and_expr(self) -> Predicate:
        parts = [self.not_expr()]
        while self.at_word("and"):
            self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else (lambda doc: all(p(doc) for p in parts))

    def not_expr(self) -> Predicate:
        if self.at_word("not"):
            self.take()
            inner = self.not_expr()
            return lambda doc: not inner(doc)
        if self.peek() == ("op", "("):
            self.take()
            inner = self.or_expr()
            self.take("op", ")")
            return inner
        return self.term()

    def term(self) -> Predicate:
        tok = self.peek()
        if tok is None:
            raise QueryError("the query ends too early")
        if tok[0] == "string":  # '<value>' in <collection>
            value = self.take()
            self.take("word", "in")
            field = self.take("word")
            if field not in _COLLECTION_FIELDS:
                raise QueryError(f"cannot search {field!r} with 'in'")
            return lambda doc: value in doc[field]
        field = self.take("word")
        if field == "sharedWithMe":
            return lambda doc: bool(doc["sharedWithMe"])
        if field == "fullText":
            self.take("word", "contains")
            needle = self.take("string").lower()
            return lambda doc: needle in doc["fullText"].lower()
        if field in _STRING_FIELDS:
            if self.at_word("contains"):
                self.take()
                needle = self.take("string")
                if field == "name":
                    return lambda doc: _contains_word_prefix(doc["name"], needle)
                return lambda doc: needle.lower() in doc[field].lower()
            op = self.take("op")
            if op not in ("=", "!="):
                raise QueryError(f"{field} supports = != contains, not {op}")
            value = self.take("string")
            return lambda doc: _COMPARE[op](doc[field], value)
        if field in _BOOL_FIELDS:
            op = self.take("op")
            word = self.take("word").lower()
            if op not in ("=", "!=") or word not in ("true", "false"):
                raise QueryError(f"{field} compares with = or != to true or false")
            flag = word == "true"
            return lambda doc: _COMPARE[op](bool(doc[field]), flag)
        if field in _TIME_FIELDS:
            op = self.take("op")
            if op not in _COMPARE:
                raise QueryError(f"{field} does not support {op}")
            ts = _timestamp(self.take("string"))
            return lambda doc: _COMPARE[op](doc[field], ts)
        raise QueryError(f"unknown search field {field!r}")


def parse(q: str | None) -> Predicate | None:
    """The predicate of a `q` parameter (None when there is no query); raises `QueryError`."""
    if q is None or not q.strip():
        return None
    return _Parser(q).parse()
