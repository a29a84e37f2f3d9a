"""Classifying a user's documents (the old `classify_documents()`): Drive text exports and emails
get a label, a confidence and a rationale. A document whose content and model are unchanged is
never sent again; a failed answer is recorded with its reason and retried by a later run; once
the user's daily token budget is spent, the rest waits for tomorrow, visibly (`deferred`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from sunny_pipelines.ai.documents import (
    SYSTEM_PROMPT,
    classification_prompt,
    classification_schema,
    input_hash,
)
from sunny_pipelines.db.models import DocumentClassification, DriveFile, Email
from sunny_pipelines.db.upserts import upsert
from sunny_pipelines.resources.ai import (
    AIAnswerError,
    AIResource,
    model_in_use,
    record_usage,
    tokens_used_today,
)
from sunny_pipelines.resources.database import DatabaseResource

# Model calls per user per run; the rest is classified by the next runs.
DOCUMENTS_PER_RUN = 200
KEY = ["user_id", "source", "source_id"]


@dataclass(frozen=True)
class Document:
    source: str  # drive | email
    source_id: str
    title: str | None
    text: str

    @property
    def content_hash(self) -> str:
        return input_hash(self.title, self.text)


@dataclass
class ClassificationResult:
    classified: int = 0
    skipped_unchanged: int = 0
    failed: int = 0
    deferred: int = 0
    tokens_used: int = 0
    model_calls: int = 0

    def metadata(self) -> dict[str, Any]:
        return {
            "change_count": self.classified,
            "classified": self.classified,
            "skipped_unchanged": self.skipped_unchanged,
            "failed": self.failed,
            "deferred": self.deferred,
            "tokens_used": self.tokens_used,
            "model_calls": self.model_calls,
        }


def user_documents(conn: Connection, user_id: str) -> list[Document]:
    """Everything of the user's that can be classified: Docs/Sheets/Slides text, email bodies."""
    files = conn.execute(
        select(DriveFile.file_id, DriveFile.name, DriveFile.text_content).where(
            DriveFile.user_id == user_id,
            DriveFile.removed.is_(False),
            DriveFile.trashed.is_(False),
            DriveFile.text_content.is_not(None),
        )
    )
    mails = conn.execute(
        select(Email.message_id, Email.subject, Email.content).where(
            Email.user_id == user_id, Email.deleted_at.is_(None)
        )
    )
    documents = [Document("drive", fid, name, text) for fid, name, text in files if text and text.strip()]
    for mid, subject, content in mails:
        body = (content or {}).get("body_text") or ""
        if body.strip() or subject:
            documents.append(Document("email", mid, subject, body))
    return documents


def _row(user_id: str, doc: Document, now: datetime, **values: Any) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "source": doc.source,
        "source_id": doc.source_id,
        "content_hash": doc.content_hash,
        "updated_at": now,
        **values,
    }


def classify_user_documents(
    database: DatabaseResource, ai: AIResource, user_id: str, limit: int = DOCUMENTS_PER_RUN
) -> ClassificationResult:
    import openai  # here, not at the top: only AI runs need it (run processes import every module)

    result = ClassificationResult()
    with database.begin() as conn:
        model = model_in_use(conn, ai.model)
        done = {
            (source, sid): (content_hash, used_model)
            for source, sid, content_hash, used_model in conn.execute(
                select(
                    DocumentClassification.source,
                    DocumentClassification.source_id,
                    DocumentClassification.content_hash,
                    DocumentClassification.model,
                ).where(
                    DocumentClassification.user_id == user_id, DocumentClassification.status == "classified"
                )
            )
        }
        attempts = dict(
            conn.execute(
                select(DocumentClassification.source_id, DocumentClassification.attempts).where(
                    DocumentClassification.user_id == user_id
                )
            ).all()
        )
        documents = user_documents(conn, user_id)
        spent = tokens_used_today(conn, user_id)
    todo = [d for d in documents if done.get((d.source, d.source_id)) != (d.content_hash, model)]
    result.skipped_unchanged = len(documents) - len(todo)
    client = ai.client()
    for i, doc in enumerate(todo[:limit]):
        now = datetime.now(UTC)
        if spent >= ai.daily_token_budget:
            reason = (
                f"daily token budget of {ai.daily_token_budget} spent ({spent} used today); "
                "continues tomorrow"
            )
            with database.begin() as conn:
                rows = [_row(user_id, d, now, status="deferred", error=reason) for d in todo[i:limit]]
                upsert(conn, DocumentClassification.__table__, rows, KEY)
            result.deferred = len(rows)
            break
        tries = attempts.get(doc.source_id, 0) + 1
        result.model_calls += 1
        try:
            call = ai.ask(
                client,
                model,
                SYSTEM_PROMPT,
                classification_prompt(doc.source, doc.title, doc.text),
                classification_schema(ai.label_set),
            )
        except (AIAnswerError, openai.APIError) as exc:
            result.failed += 1
            error = f"{type(exc).__name__}: {exc}"[:1000]
            with database.begin() as conn:
                row = _row(user_id, doc, now, status="failed", error=error, model=model, attempts=tries)
                upsert(conn, DocumentClassification.__table__, [row], KEY)
            continue
        answer: Any = call.answer
        with database.begin() as conn:
            row = _row(
                user_id,
                doc,
                now,
                status="classified",
                label=str(answer.label),
                confidence=answer.confidence,
                rationale=answer.rationale,
                model=call.model,
                error=None,
                attempts=tries,
                classified_at=now,
            )
            upsert(conn, DocumentClassification.__table__, [row], KEY)
            record_usage(conn, user_id, "classification", call)
        spent += call.total_tokens
        result.tokens_used += call.total_tokens
        result.classified += 1
    return result
