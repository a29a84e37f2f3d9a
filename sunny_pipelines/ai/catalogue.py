"""The model catalogue (the old `update_models()`): the provider's models into `ai_models`, and
the model calls go to: the configured one while it is listed, else the fallback."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update

from sunny_pipelines.db.models import AiModel
from sunny_pipelines.db.upserts import upsert
from sunny_pipelines.resources.ai import AIResource
from sunny_pipelines.resources.database import DatabaseResource


def choose_model(listed: set[str], configured: str, fallback: str) -> str | None:
    """The configured model if listed, else the fallback if listed, else none."""
    if configured in listed:
        return configured
    return fallback if fallback in listed else None


def refresh_catalogue(database: DatabaseResource, ai: AIResource) -> dict[str, Any]:
    listed = {m.id: getattr(m, "owned_by", None) for m in ai.client().models.list()}
    in_use = choose_model(set(listed), ai.model, ai.fallback_model)
    now = datetime.now(UTC)
    with database.begin() as conn:
        conn.execute(update(AiModel).values(available=False, in_use=False, checked_at=now))
        upsert(
            conn,
            AiModel.__table__,
            [
                {
                    "name": name,
                    "owned_by": owner,
                    "available": True,
                    "in_use": name == in_use,
                    "checked_at": now,
                }
                for name, owner in sorted(listed.items())
            ],
            ["name"],
        )
    return {
        "models_listed": len(listed),
        "configured_model": ai.model,
        "configured_model_available": ai.model in listed,
        "model_in_use": in_use or "none",
    }
