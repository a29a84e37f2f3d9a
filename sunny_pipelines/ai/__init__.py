"""AI: document and email classification, meeting summaries, the model catalogue."""

import dagster as dg

from sunny_pipelines.ai.assets import (
    POOL,
    ai_models,
    configured_model_available,
    document_classifications,
    meeting_summaries,
)
from sunny_pipelines.ai.jobs import classification_job, model_catalogue_job, summaries_job
from sunny_pipelines.ai.schedules import classification_schedule, model_catalogue_schedule, summaries_schedule
from sunny_pipelines.per_user import Domain

domain = Domain(
    name="ai",
    definitions=dg.Definitions(
        assets=[document_classifications, meeting_summaries, ai_models],
        asset_checks=[configured_model_available],
        jobs=[classification_job, summaries_job, model_catalogue_job],
        schedules=[classification_schedule, summaries_schedule, model_catalogue_schedule],
    ),
    pool=POOL,
)
