"""The .eml fixtures: real-shaped messages as Google Calendar, Outlook, Gmail and bulk senders write them."""

from __future__ import annotations

from pathlib import Path

from sunny_pipelines.gmail.mime import ParsedMessage, parse_message

MESSAGES = Path(__file__).parent / "messages"
MAILBOX = "sunny.user@example.com"


def raw(name: str) -> bytes:
    return (MESSAGES / name).read_bytes()


def parsed(name: str) -> ParsedMessage:
    return parse_message(raw(name))


def all_fixtures() -> list[str]:
    return sorted(path.name for path in MESSAGES.glob("*.eml"))
