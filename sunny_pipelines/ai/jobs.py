import dagster as dg

from sunny_pipelines.ai.assets import ai_models, document_classifications, meeting_summaries
from sunny_pipelines.per_user.definitions import per_user_job

classification_job = per_user_job(
    "classification",
    document_classifications,
    "Classify a range of users' new or changed documents and emails.",
)

summaries_job = per_user_job(
    "summaries", meeting_summaries, "Summarize a range of users' transcribed meetings."
)

model_catalogue_job = dg.define_asset_job(
    "model_catalogue",
    selection=[ai_models],
    executor_def=dg.in_process_executor,
    description="Refresh the provider's model list and the model in use; check the configured one.",
)
