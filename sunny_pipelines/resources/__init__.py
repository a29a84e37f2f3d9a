"""ConfigurableResources shared by every domain, configured from the environment."""

from __future__ import annotations

import os

import dagster as dg

from sunny_pipelines.db.engine import database_url_from_env
from sunny_pipelines.resources.ai import AIResource
from sunny_pipelines.resources.attendee import AttendeeResource
from sunny_pipelines.resources.cipher import TokenCipher
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleResource

DEFAULT_SANDBOX_URL = "http://127.0.0.1:8765"


def env_or_default(name: str, default: str) -> str:
    """``dg.EnvVar(name)`` when the variable is set, else a safe local default."""
    return dg.EnvVar(name) if os.environ.get(name) else default  # type: ignore[return-value]


def build_resources() -> dict[str, dg.ConfigurableResource]:
    database = DatabaseResource(url=env_or_default("SUNNY_DATABASE_URL", database_url_from_env()))
    cipher = TokenCipher(key=env_or_default("SUNNY_TOKEN_KEY", ""))
    google = GoogleResource(
        database=database,
        cipher=cipher,
        sandbox_url=env_or_default("SUNNY_SANDBOX_URL", DEFAULT_SANDBOX_URL),
        push_receiver_url=env_or_default("SUNNY_WEBHOOK_BASE_URL", ""),
        gmail_pubsub_topic=env_or_default("SUNNY_GMAIL_PUBSUB_TOPIC", ""),
        client_id=env_or_default("SUNNY_GOOGLE_CLIENT_ID", "sunny-local"),
        client_secret=env_or_default("SUNNY_GOOGLE_CLIENT_SECRET", "sunny-local-secret"),
    )
    attendee = AttendeeResource(
        # Locally Attendee is the sandbox too, wherever SUNNY_SANDBOX_URL puts it.
        base_url=env_or_default(
            "SUNNY_ATTENDEE_URL", env_or_default("SUNNY_SANDBOX_URL", DEFAULT_SANDBOX_URL)
        ),
        api_key=env_or_default("SUNNY_ATTENDEE_API_KEY", "sunny-local-attendee-key"),
    )
    ai = AIResource(
        # Locally the model is the sandbox's OpenAI-compatible API.
        base_url=env_or_default("SUNNY_AI_BASE_URL", DEFAULT_SANDBOX_URL + "/v1"),
        api_key=env_or_default("SUNNY_AI_API_KEY", "sunny-local-openai-key"),
        model=env_or_default("SUNNY_AI_MODEL", "gpt-4o-mini"),
        fallback_model=env_or_default("SUNNY_AI_FALLBACK_MODEL", "gpt-4o"),
        daily_token_budget=int(os.environ.get("SUNNY_AI_DAILY_TOKEN_BUDGET", "200000")),
        labels=env_or_default("SUNNY_AI_LABELS", AIResource.model_fields["labels"].default),
    )
    return {"database": database, "cipher": cipher, "google": google, "attendee": attendee, "ai": ai}


__all__ = [
    "AttendeeResource",
    "DatabaseResource",
    "GoogleResource",
    "TokenCipher",
    "build_resources",
    "env_or_default",
]
