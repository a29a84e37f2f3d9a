"""The beat table's AI entries: the model catalogue (daily 02:00), and classification and
summaries of due users (the old `classify_documents()`)."""

import dagster as dg

from sunny_pipelines.ai.assets import CLASSIFICATION, SUMMARIES
from sunny_pipelines.ai.jobs import classification_job, model_catalogue_job, summaries_job
from sunny_pipelines.per_user.definitions import due_users_schedule

classification_schedule = due_users_schedule(
    name="classification_schedule",
    cron_schedule="10,40 * * * *",
    job=classification_job,
    sync=CLASSIFICATION,
    description="Classify the new or changed documents and emails of users not classified for 30 min.",
)

summaries_schedule = due_users_schedule(
    name="summaries_schedule",
    cron_schedule="20,50 * * * *",
    job=summaries_job,
    sync=SUMMARIES,
    description="Summarize newly transcribed meetings of users not looked at for 30 min.",
)

model_catalogue_schedule = dg.ScheduleDefinition(
    name="model_catalogue_schedule",
    cron_schedule="0 2 * * *",
    job=model_catalogue_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="AI model updates: list the provider's models; fall back while the configured model "
    "is missing.",
)
