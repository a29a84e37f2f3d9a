"""What the classifier is asked, as plain functions: the label set, the answer's schema, and a
document cut to size on a boundary."""

from __future__ import annotations

import functools
import hashlib
from typing import Literal

from pydantic import BaseModel, Field, create_model

# Enough for a label; a long document's opening says what it is.
INPUT_CHAR_LIMIT = 12_000


@functools.cache
def classification_schema(labels: tuple[str, ...]) -> type[BaseModel]:
    """The model's answer (structured output) for this label set: exactly one of ``labels``, a
    confidence in 0..1 and a short rationale."""
    return create_model(
        "Classification",
        label=(Literal[labels], ...),  # type: ignore[valid-type]
        confidence=(float, Field(ge=0.0, le=1.0)),
        rationale=(str, Field(max_length=500)),
    )


SYSTEM_PROMPT = (
    "You classify a user's documents and emails for a meeting assistant. Answer with the one label "
    "that fits best, your confidence from 0 to 1, and a one-sentence rationale that cites the text."
)


def cut(text: str, limit: int = INPUT_CHAR_LIMIT) -> tuple[str, bool]:
    """``text`` cut to ``limit`` characters on a paragraph, line or word boundary; (text, cut?)."""
    if len(text) <= limit:
        return text, False
    head = text[:limit]
    for boundary in ("\n\n", "\n", " "):
        at = head.rfind(boundary)
        if at > limit // 2:
            return head[:at].rstrip(), True
    return head, True


def classification_prompt(kind: str, title: str | None, text: str) -> str:
    body, was_cut = cut(text)
    note = "\n[the document continues; only its beginning is shown]" if was_cut else ""
    return f"Kind: {kind}\nTitle: {title or '(none)'}\n\n{body}{note}"


def input_hash(title: str | None, text: str) -> str:
    """What a classification depends on: a changed title or text is classified again."""
    return hashlib.sha256(f"{title or ''}\n{text}".encode()).hexdigest()
