"""AI assets: `document_classifications` and `meeting_summaries` (one partition per user), and the
model catalogue `ai_models` with its check."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from sqlalchemy import select

from sunny_pipelines.ai.catalogue import refresh_catalogue
from sunny_pipelines.ai.classify import classify_user_documents
from sunny_pipelines.ai.summaries import summarize_user_meetings
from sunny_pipelines.db.models import AiModel
from sunny_pipelines.inbox.rows import InboxRow
from sunny_pipelines.per_user import UserSync, per_user_asset, sync_users
from sunny_pipelines.resources.ai import AIResource
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.vocabulary import Service

POOL = "ai"  # the old "ai" Celery queue
# Both read our tables and call the model, never Google.
CLASSIFICATION = UserSync(
    service=Service.CLASSIFICATION, default_interval_seconds=30 * 60, needs_google_grant=False
)
SUMMARIES = UserSync(service=Service.SUMMARIES, default_interval_seconds=30 * 60, needs_google_grant=False)
PER_USER_AI_ASSET = per_user_asset(pool=POOL, group_name="ai", kinds={"openai", "sql"})


@dg.asset(
    **PER_USER_AI_ASSET,
    deps=[dg.AssetKey("drive_files"), dg.AssetKey("emails")],
    description="Each user's Drive documents and emails, labelled by the model (meeting notes, agenda, "
    "proposal, contract, invoice, report, personal, newsletter, other) with a confidence and a "
    "rationale. Unchanged documents are never sent again.",
)
def document_classifications(
    context: dg.AssetExecutionContext, ai: AIResource, database: DatabaseResource
) -> Iterator[dg.AssetMaterialization]:
    def work(user_id: str, claimed: list[InboxRow]) -> dict[str, Any]:
        return classify_user_documents(database, ai, user_id).metadata()

    yield from sync_users(context, database, CLASSIFICATION, work)


@dg.asset(
    **PER_USER_AI_ASSET,
    deps=[dg.AssetKey("meeting_bots")],
    description="Summaries, decisions and action items of the meetings with a transcript (owners only "
    "as the transcript names them), recomputed only when the transcript changes.",
)
def meeting_summaries(
    context: dg.AssetExecutionContext, ai: AIResource, database: DatabaseResource
) -> Iterator[dg.AssetMaterialization]:
    def work(user_id: str, claimed: list[InboxRow]) -> dict[str, Any]:
        return summarize_user_meetings(database, ai, user_id).metadata()

    yield from sync_users(context, database, SUMMARIES, work)


@dg.asset(
    pool=POOL,
    group_name="ai",
    kinds={"openai", "sql"},
    description="The models the AI provider lists, and the one calls go to: the configured model while "
    "it is listed, else the fallback.",
)
def ai_models(ai: AIResource, database: DatabaseResource) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata=refresh_catalogue(database, ai))


@dg.asset_check(asset=ai_models, pool=POOL, description="The configured model is listed by the provider.")
def configured_model_available(ai: AIResource, database: DatabaseResource) -> dg.AssetCheckResult:
    with database.begin() as conn:
        available = conn.execute(select(AiModel.available).where(AiModel.name == ai.model)).scalar()
        in_use = conn.execute(select(AiModel.name).where(AiModel.in_use.is_(True))).scalar()
    passed = bool(available)
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None
        if passed
        else f"{ai.model} is not listed by the provider: calls go to {in_use or 'no model'}. Set "
        "SUNNY_AI_MODEL to a listed model, or wait for the provider to list it again.",
        metadata={"configured_model": ai.model, "model_in_use": in_use or "none"},
    )
