"""Deterministic, content-aware answers that follow a JSON schema (the model's side of Structured
Outputs), plain-text answers, and the token estimate of `usage`.

Everything is a pure function of the request: the same messages and schema give the same answer,
on any machine. Where a choice is cheap to make from the content it is made from the content:

- an enum picks the value whose words occur most in the user content (so an invoice is labelled
  "invoice"), the hash of the messages breaking ties and deciding when nothing matches;
- a number named like `confidence`/`score`/`probability` lies in 0..1 (within the schema's bounds);
- a person field (`owner`, `speaker`, `assignee`, ...) takes a name found in the content (a
  transcript's `Name:` speaker labels first, then capitalized words): never an invented one; null
  when nothing fits and the schema allows null;
- a title is the first words of the content, other strings its sentences (item i of an array
  takes sentence i), a boolean `is_x`/`has_x` is whether `x` occurs in the content;
- dates come from the content when it holds an ISO date.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

PERSON_WORDS = frozenset(
    {
        "owner",
        "speaker",
        "assignee",
        "person",
        "attendee",
        "participant",
        "author",
        "organizer",
        "organiser",
        "sender",
        "who",
        "responsible",
        "presenter",
        "host",
        "assigned",
        "reporter",
    }
)
SCORE_WORDS = frozenset({"confidence", "score", "probability", "likelihood", "certainty", "relevance"})
TITLE_WORDS = frozenset({"title", "subject", "headline", "topic", "heading", "name"})
BOOL_PREFIXES = frozenset({"is", "has", "have", "should", "contains", "includes", "needs", "requires", "can"})
# Capitalized words that are not names (sentence starts, calendar words, meeting vocabulary).
_NOT_NAMES_TEXT = """a an the this that these those there here it its i we you he she they
    our your their my me us
    and or but so if then when while after before because also please thanks thank hi hello dear
    regards best yes no ok okay note notes agenda invoice meeting meetings minutes summary action
    actions item items next today tomorrow yesterday monday tuesday wednesday thursday friday saturday
    sunday january february march april may june july august september october november december
    q1 q2 q3 q4 am pm utc re fw fwd subject from to cc date total due amount payment team all
    everyone project update status decision decisions follow up call discussion review budget plan"""
NOT_NAMES = frozenset(_NOT_NAMES_TEXT.split())
_WORD = re.compile(r"[A-Za-z0-9]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_SPEAKER = re.compile(r"^\s*([A-Z][a-z]+(?: [A-Z][a-z]+)?)\s*:", re.MULTILINE)
_CAPITALIZED = re.compile(r"\b([A-Z][a-z]+(?:[-'][A-Z][a-z]+)?)\b")
_ISO_DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2})(?::(\d{2}))?)?")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"https?://[^\s)>\]]+")
FALLBACK_DATE = "2026-01-05"


def message_text(content: Any) -> str:
    """The text of a message's `content`: a string, or a list of parts (`{"type": "text", "text"}`)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict) and "text" in part
        )
    return ""


def estimate_tokens(text: str) -> int:
    """About 1.3 tokens a word, as a rule of thumb for English."""
    return math.ceil(len(_WORD.findall(text)) * 1.3)


def _stem(word: str) -> str:
    word = word.lower()
    for suffix in ("ies", "es", "s"):
        if len(word) > 4 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def _name_words(name: str) -> list[str]:
    """`ownerName`, `owner_name`, `owner-name` -> ["owner", "name"]."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w.lower() for w in _WORD.findall(spaced)]


@dataclass
class Context:
    """What the answer is made from: the conversation's text and its hash."""

    messages: list[dict[str, Any]]
    salt: str = ""  # makes choice i of `n` differ from choice 0
    defs: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def digest(self) -> str:
        canonical = json.dumps(self.messages, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256((canonical + "\x00" + self.salt).encode()).hexdigest()

    def hash(self, path: str) -> int:
        return int(hashlib.sha256(f"{self.digest}:{path}".encode()).hexdigest()[:12], 16)

    @cached_property
    def content(self) -> str:
        """The user's content (what a label is about); all messages when there is no user message.
        System prompts are left out on purpose: they tend to list every label."""
        user = [message_text(m.get("content")) for m in self.messages if m.get("role") == "user"]
        text = "\n".join(t for t in user if t.strip())
        return text or "\n".join(message_text(m.get("content")) for m in self.messages)

    @cached_property
    def stems(self) -> list[str]:
        return [_stem(w) for w in _WORD.findall(self.content)]

    @cached_property
    def sentences(self) -> list[str]:
        parts = [s.strip() for s in _SENTENCE_END.split(self.content)]
        return [s for s in parts if _WORD.search(s)] or ["(empty)"]

    @cached_property
    def names(self) -> list[str]:
        """People named in the content: transcript speaker labels, then other capitalized words."""
        found: list[str] = []
        for match in _SPEAKER.finditer(self.content):
            if match.group(1).split()[0].lower() not in NOT_NAMES and match.group(1) not in found:
                found.append(match.group(1))
        for match in _CAPITALIZED.finditer(self.content):
            word = match.group(1)
            known = word in found or any(word in name.split() for name in found)
            if word.lower() not in NOT_NAMES and len(word) > 1 and not known:
                found.append(word)
        return found

    def score(self, value: str) -> float:
        """How much the content is about `value`: the mean occurrence count of its words, plus one
        when the whole phrase occurs."""
        words = [_stem(w) for w in _WORD.findall(value)]
        if not words:
            return 0.0
        counts = [self.stems.count(w) for w in words]
        if 0 in counts and len(words) > 1:
            # A multi-word value counts only the words that occur, halved: "meeting_notes" is not
            # what a text that merely mentions a meeting is.
            return sum(counts) / len(words) / 2
        phrase = " ".join(words)
        bonus = 1.0 if len(words) > 1 and phrase in " ".join(self.stems) else 0.0
        return sum(counts) / len(words) + bonus


class SchemaAnswer:
    """An instance of a JSON schema (the subset Structured Outputs accepts, plus bounds), made from
    a `Context`."""

    def __init__(self, schema: dict[str, Any], ctx: Context) -> None:
        self.root = schema
        self.ctx = ctx
        self.defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}

    def value(self) -> Any:
        return self.make(self.root, "", "$", 0)

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        seen = 0
        while "$ref" in schema and seen < 32:  # recursive schemas: refs resolve one at a time
            ref = str(schema["$ref"])
            target: Any = self.root if ref == "#" else self.defs.get(ref.rsplit("/", 1)[-1], {})
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            seen += 1
        return schema

    def make(self, schema: Any, name: str, path: str, index: int, depth: int = 0) -> Any:
        if not isinstance(schema, dict):
            return None
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.pick_enum(list(schema["enum"]), path)
        options = schema.get("anyOf") or schema.get("oneOf")
        if options:
            return self.make_union(
                [self.resolve(o) for o in options if isinstance(o, dict)], name, path, index, depth
            )
        if "allOf" in schema:
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                merged.update(self.resolve(part))
            return self.make(merged, name, path, index, depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            types = [t for t in kind if t != "null"]
            nullable = "null" in kind
            if not types:
                return None
            if nullable and self.prefers_null(name, types[0], schema):
                return None
            return self.make({**schema, "type": types[0]}, name, path, index, depth)
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
        if kind == "object":
            if depth > 24:  # a recursive schema that requires nesting forever: give up there
                return {}
            props = schema.get("properties", {})
            return {key: self.make(sub, key, f"{path}.{key}", index, depth + 1) for key, sub in props.items()}
        if kind == "array":
            return self.make_array(schema, name, path, depth)
        if kind == "string":
            return self.make_string(schema, name, path, index)
        if kind in ("number", "integer"):
            return self.make_number(schema, name, path, kind == "integer")
        if kind == "boolean":
            return self.make_bool(name, path)
        return None

    def make_union(self, options: list[dict[str, Any]], name: str, path: str, index: int, depth: int) -> Any:
        non_null = [o for o in options if o.get("type") != "null"]
        if not non_null:
            return None
        first = non_null[0]
        if len(non_null) < len(options) and self.prefers_null(name, first.get("type"), first):
            return None
        return self.make(first, name, path, index, depth)

    def prefers_null(self, name: str, kind: Any, schema: dict[str, Any]) -> bool:
        """Null rather than an invented value: a person field when the content names nobody, a
        date when the content holds none, an email or URL the content does not give."""
        if kind != "string" or "enum" in schema:
            return False
        words = set(_name_words(name))
        if words & PERSON_WORDS:
            return not self.ctx.names
        fmt = schema.get("format")
        if fmt in ("date", "date-time") or words & {"date", "due", "deadline", "when"}:
            return _ISO_DATE.search(self.ctx.content) is None
        if fmt == "email" or "email" in words:
            return _EMAIL.search(self.ctx.content) is None
        if fmt == "uri" or words & {"url", "link"}:
            return _URL.search(self.ctx.content) is None
        return False

    def pick_enum(self, values: list[Any], path: str) -> Any:
        if not values:
            return None
        scores = [self.ctx.score(str(v)) if isinstance(v, str) else 0.0 for v in values]
        best = max(scores)
        if best > 0:
            tied = [v for v, s in zip(values, scores, strict=True) if s == best]
            return tied[self.ctx.hash(path) % len(tied)]
        return values[self.ctx.hash(path) % len(values)]

    def make_array(self, schema: dict[str, Any], name: str, path: str, depth: int) -> list[Any]:
        items = self.resolve(schema.get("items") or {})
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", max(low, 5)))
        if "enum" in items:
            # A list of labels: every value the content is about, best first; else one by hash.
            values = list(items["enum"])
            scored = sorted(
                (v for v in values if isinstance(v, str) and self.ctx.score(v) > 0),
                key=lambda v: -self.ctx.score(v),
            )
            chosen = scored or [self.pick_enum(values, path)]
            for v in values:  # pad to minItems with the remaining values
                if len(chosen) >= low:
                    break
                if v not in chosen:
                    chosen.append(v)
            return chosen[: max(high, 0)]
        # One item a sentence, up to three (action items, decisions, key points...).
        count = min(len(self.ctx.sentences), 3)
        # Deep down (recursive schemas: a tree of nodes) arrays hold only what minItems asks.
        count = low if depth > 3 else max(low, min(count, high))
        return [self.make(items, _singular(name), f"{path}[{i}]", i, depth + 1) for i in range(count)]

    def make_string(self, schema: dict[str, Any], name: str, path: str, index: int) -> str:
        words = set(_name_words(name))
        fmt = schema.get("format")
        ctx = self.ctx
        if fmt in ("date", "date-time", "time") or words & {"date", "due", "deadline", "when"}:
            text = self.date(fmt or "date")
        elif fmt == "email" or "email" in words:
            emails = _EMAIL.findall(ctx.content)
            text = emails[index % len(emails)] if emails else ""
        elif fmt == "uri" or words & {"url", "link"}:
            urls = _URL.findall(ctx.content)
            text = urls[index % len(urls)] if urls else ""
        elif words & PERSON_WORDS:
            # Only names the content holds; a field that must be a string gets one of its words.
            # The person the item's own sentence names, else the index-th name.
            names = ctx.names
            sentence = ctx.sentences[index % len(ctx.sentences)]
            own = [n for n in names if re.search(rf"\b{re.escape(n)}\b", sentence)]
            text = own[0] if own else names[index % len(names)] if names else ""
        elif words & TITLE_WORDS:
            text = " ".join(ctx.sentences[index % len(ctx.sentences)].split()[:8]).rstrip(".,;:")
        elif words & {"summary", "description", "overview", "abstract", "gist"} and "[" not in path:
            text = " ".join(ctx.sentences[:2])
        else:
            text = ctx.sentences[index % len(ctx.sentences)]
        low = int(schema.get("minLength", 0))
        high = schema.get("maxLength")
        if len(text) < low:
            text = (text + " " + ctx.content).strip()
            text = text + "." * (low - len(text))
        if isinstance(high, int):
            text = text[:high]
        return text

    def date(self, fmt: str) -> str:
        match = _ISO_DATE.search(self.ctx.content)
        day = match.group(1) if match else FALLBACK_DATE
        clock = (
            (match.group(2) if match and match.group(2) else "09:00")
            + ":"
            + (match.group(3) if match and match.group(3) else "00")
        )
        if fmt == "date-time":
            return f"{day}T{clock}Z"
        if fmt == "time":
            return clock
        return day

    def make_number(self, schema: dict[str, Any], name: str, path: str, integer: bool) -> float | int:
        h = self.ctx.hash(path)
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        if set(_name_words(name)) & SCORE_WORDS and not integer:
            low = 0.0 if low is None else max(float(low), 0.0)
            high = 1.0 if high is None else min(float(high), 1.0)
            # Toward the top of the range: a confident emulated model, 0.55..0.94 of it.
            value: float = low + (high - low) * (0.55 + (h % 40) / 100)
            return round(value, 2)
        lo = float(low) if low is not None else 0.0
        hi = float(high) if high is not None else lo + 10.0
        if "exclusiveMinimum" in schema and low == schema["exclusiveMinimum"]:
            lo += 1 if integer else 0.01
        if "exclusiveMaximum" in schema and high == schema["exclusiveMaximum"]:
            hi -= 1 if integer else 0.01
        if integer:
            span = max(int(math.floor(hi)) - int(math.ceil(lo)) + 1, 1)
            return int(math.ceil(lo)) + h % span
        return round(lo + (hi - lo) * (h % 1000) / 1000, 2)

    def make_bool(self, name: str, path: str) -> bool:
        words = [w for w in _name_words(name) if w not in BOOL_PREFIXES]
        if words:
            return any(_stem(w) in self.ctx.stems for w in words)
        return self.ctx.hash(path) % 2 == 0


def _singular(name: str) -> str:
    return _stem(name) if name else name


def schema_answer(schema: dict[str, Any], ctx: Context) -> Any:
    return SchemaAnswer(schema, ctx).value()


def violate(schema: dict[str, Any], value: Any) -> Any:
    """`value` changed so that it no longer follows `schema` (still valid JSON): the first enum
    property gets a value outside the enum; failing that, the first property the wrong type."""
    answer = SchemaAnswer(schema, Context([]))
    root = answer.resolve(schema)
    if not isinstance(value, dict) or not isinstance(root.get("properties"), dict) or not value:
        return {"sandbox_schema_violation": True} if not isinstance(value, dict) else [value]
    for key, sub in root["properties"].items():
        if "enum" in answer.resolve(sub) and key in value:
            return {**value, key: "sandbox-not-in-enum"}
    key = next(iter(value))
    wrong: Any = {"sandbox": "wrong type"} if not isinstance(value[key], dict) else "wrong type"
    return {**value, key: wrong}


def plain_answer(ctx: Context) -> str:
    """A deterministic plain-text answer that quotes the content."""
    first = ctx.sentences[0]
    return f"(sandbox answer {ctx.digest[:8]}) {first}"
