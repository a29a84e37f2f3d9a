"""The AI client: the `openai` library pointed at OpenAI or any OpenAI-compatible server (a local
model server, the sandbox), with typed answers through structured outputs, token usage recorded
per call, and a per-user daily token budget."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

import dagster as dg
from pydantic import BaseModel
from sqlalchemy import Connection, func, select

from sunny_pipelines.db.models import AiModel, AiUsage

if TYPE_CHECKING:
    # Imported where used: every run process imports the code location, only AI runs need it.
    import openai

Answer = TypeVar("Answer", bound=BaseModel)


class AIAnswerError(Exception):
    """The model answered, but not with a usable object: malformed or schema-violating JSON, a
    refusal. Recorded as a failure with this reason, never stored as a result."""


@dataclass(frozen=True)
class AICall:
    answer: BaseModel
    model: str
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def tokens_used_today(conn: Connection, user_id: str) -> int:
    return int(
        conn.execute(
            select(func.coalesce(func.sum(AiUsage.total_tokens), 0)).where(
                AiUsage.user_id == user_id, AiUsage.day == today()
            )
        ).scalar_one()
    )


def record_usage(conn: Connection, user_id: str | None, purpose: str, call: AICall) -> None:
    conn.execute(
        AiUsage.__table__.insert().values(
            user_id=user_id,
            day=today(),
            purpose=purpose,
            model=call.model,
            prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens,
            total_tokens=call.total_tokens,
        )
    )


def model_in_use(conn: Connection, configured: str) -> str:
    """The catalogue's choice (the fallback while the configured model is missing), else the
    configured model."""
    chosen = conn.execute(select(AiModel.name).where(AiModel.in_use.is_(True))).scalar()
    return chosen or configured


class AIResource(dg.ConfigurableResource):
    """Where the model is, which one, and how much each user may spend a day."""

    base_url: str = "http://127.0.0.1:8765/v1"
    api_key: str = "sunny-local-openai-key"
    model: str = "gpt-4o-mini"
    fallback_model: str = "gpt-4o"
    timeout_seconds: float = 60.0
    # The client's own retries (429 honouring retry-after, 5xx, timeouts) before a call fails.
    max_retries: int = 2
    daily_token_budget: int = 200_000
    # The labels documents are classified into, comma-separated.
    labels: str = "meeting_notes,agenda,proposal,contract,invoice,report,personal,newsletter,other"

    @property
    def label_set(self) -> tuple[str, ...]:
        return tuple(label.strip() for label in self.labels.split(",") if label.strip())

    def client(self) -> openai.OpenAI:
        import openai

        return openai.OpenAI(
            base_url=self.base_url,
            api_key=self.api_key,
            timeout=self.timeout_seconds,
            max_retries=self.max_retries,
        )

    def ask(self, client: openai.OpenAI, model: str, system: str, user: str, schema: type[Answer]) -> AICall:
        """One structured-output call. Raises AIAnswerError for an unusable answer and the
        client's APIError for a failed call (both end recorded by the caller)."""
        import openai

        try:
            completion = client.chat.completions.parse(
                model=model,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                response_format=schema,
            )
        except openai.APIError:
            raise
        except Exception as exc:  # the answer did not parse into the schema
            raise AIAnswerError(f"unusable answer: {type(exc).__name__}: {str(exc)[:300]}") from exc
        message = completion.choices[0].message
        if message.refusal:
            raise AIAnswerError(f"refused: {message.refusal[:300]}")
        if message.parsed is None:
            raise AIAnswerError("no parsed answer")
        usage = completion.usage
        return AICall(
            answer=message.parsed,
            model=completion.model or model,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )
