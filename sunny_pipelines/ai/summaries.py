"""Meeting summaries: for each meeting with a stored transcript, a summary, its decisions and
action items (with owners only where the transcript names them), recomputed only when the
transcript changes. Each meeting is summarized once, by its first participant's partition."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Connection, func, select

from sunny_pipelines.ai.documents import cut
from sunny_pipelines.db.models import MeetingBot, MeetingParticipant, MeetingSummary, MeetingTranscript
from sunny_pipelines.db.upserts import upsert
from sunny_pipelines.resources.ai import (
    AIAnswerError,
    AIResource,
    model_in_use,
    record_usage,
    tokens_used_today,
)
from sunny_pipelines.resources.database import DatabaseResource

SYSTEM_PROMPT = (
    "You summarize a meeting from its transcript for the people who attended. Give a short summary, "
    "the decisions taken, and the action items. An action item's owner must be a speaker name exactly "
    "as the transcript writes it, or null when the transcript names nobody. Never invent names."
)
TRANSCRIPT_CHAR_LIMIT = 40_000


class ActionItem(BaseModel):
    description: str = Field(max_length=500)
    owner: str | None


class SummaryAnswer(BaseModel):
    summary: str = Field(max_length=4000)
    decisions: list[str]
    action_items: list[ActionItem]


@dataclass
class SummaryResult:
    summarized: int = 0
    unchanged: int = 0
    failed: int = 0
    deferred: int = 0
    tokens_used: int = 0

    def metadata(self) -> dict[str, Any]:
        return {
            "change_count": self.summarized,
            "summarized": self.summarized,
            "skipped_unchanged": self.unchanged,
            "failed": self.failed,
            "deferred": self.deferred,
            "tokens_used": self.tokens_used,
        }


def transcript_text(lines: list[Any]) -> str:
    return "\n".join(f"{line.speaker_name or 'Unknown speaker'}: {line.text}" for line in lines)


def keep_named_owners(answer: SummaryAnswer, speakers: set[str]) -> list[dict[str, Any]]:
    """Action items with owners the transcript names; any other owner the model gave is dropped."""
    return [
        {"description": item.description, "owner": item.owner if item.owner in speakers else None}
        for item in answer.action_items
    ]


def _meetings_of(conn: Connection, user_id: str) -> list[int]:
    """Meetings with a stored transcript whose first participant is this user."""
    first = (
        select(MeetingParticipant.meeting_id, func.min(MeetingParticipant.user_id).label("owner"))
        .group_by(MeetingParticipant.meeting_id)
        .subquery()
    )
    return list(
        conn.execute(
            select(first.c.meeting_id)
            .join(MeetingBot, MeetingBot.meeting_id == first.c.meeting_id)
            .where(first.c.owner == user_id, MeetingBot.transcript_status == "stored")
            .distinct()
        ).scalars()
    )


def summarize_user_meetings(database: DatabaseResource, ai: AIResource, user_id: str) -> SummaryResult:
    import openai  # here, not at the top: only AI runs need it (run processes import every module)

    result = SummaryResult()
    with database.begin() as conn:
        model = model_in_use(conn, ai.model)
        spent = tokens_used_today(conn, user_id)
        meeting_ids = _meetings_of(conn, user_id)
    client = ai.client()
    for meeting_id in meeting_ids:
        with database.begin() as conn:
            lines = conn.execute(
                select(MeetingTranscript.speaker_name, MeetingTranscript.text)
                .where(MeetingTranscript.meeting_id == meeting_id)
                .order_by(MeetingTranscript.bot_id, MeetingTranscript.sequence)
            ).all()
            stored = conn.execute(
                select(MeetingSummary.status, MeetingSummary.transcript_hash).where(
                    MeetingSummary.meeting_id == meeting_id
                )
            ).first()
        text = transcript_text(lines)
        digest = hashlib.sha256(text.encode()).hexdigest()
        if stored is not None and tuple(stored) == ("summarized", digest):
            result.unchanged += 1
            continue
        now = datetime.now(UTC)
        row: dict[str, Any] = {
            "meeting_id": meeting_id,
            "user_id": user_id,
            "transcript_hash": digest,
            "updated_at": now,
        }
        if spent >= ai.daily_token_budget:
            result.deferred += 1
            row |= {
                "status": "deferred",
                "error": f"daily token budget of {ai.daily_token_budget} spent; continues tomorrow",
            }
        else:
            body, _ = cut(text, TRANSCRIPT_CHAR_LIMIT)
            try:
                call = ai.ask(client, model, SYSTEM_PROMPT, body, SummaryAnswer)
            except (AIAnswerError, openai.APIError) as exc:
                result.failed += 1
                row |= {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:1000], "model": model}
            else:
                answer: SummaryAnswer = call.answer  # type: ignore[assignment]
                speakers = {line.speaker_name for line in lines if line.speaker_name}
                row |= {
                    "status": "summarized",
                    "summary": answer.summary,
                    "decisions": list(answer.decisions),
                    "action_items": keep_named_owners(answer, speakers),
                    "model": call.model,
                    "error": None,
                }
                spent += call.total_tokens
                result.tokens_used += call.total_tokens
                result.summarized += 1
        with database.begin() as conn:
            upsert(conn, MeetingSummary.__table__, [row], ["meeting_id"])
            if row["status"] == "summarized":
                record_usage(conn, user_id, "summary", call)
    return result
