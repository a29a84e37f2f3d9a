"""The daily run retention job and its schedule."""

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from sunny_pipelines.housekeeping.retention import BATCH_SIZE, DEFAULT_MAX_AGE_DAYS, cutoff, delete_old_runs

POOL = "sync"  # work over the whole instance, one at a time (the old "sync" Celery queue)


class RunRetentionConfig(dg.Config):
    max_age_days: float = Field(
        default=DEFAULT_MAX_AGE_DAYS,
        description="Runs created longer ago than this are deleted (SUNNY_DAGSTER_RUN_RETENTION_DAYS).",
    )
    batch_size: int = Field(default=BATCH_SIZE, description="Runs read and deleted per batch.")


@dg.op(pool=POOL)
def delete_old_dagster_runs(
    context: dg.OpExecutionContext, config: RunRetentionConfig
) -> Iterator[dg.Output[int]]:
    created_before = cutoff(datetime.now(UTC), config.max_age_days)
    context.log.info(f"deleting finished runs created before {created_before.isoformat()}")
    outcome = delete_old_runs(
        context.instance, created_before, batch_size=config.batch_size, log=context.log.info
    )
    context.log.info(
        f"deleted {outcome.runs_deleted} runs; "
        f"kept {outcome.runs_kept_latest} holding a latest materialization"
    )
    metadata: dict[str, object] = {
        "runs_deleted": outcome.runs_deleted,
        "runs_kept_latest": outcome.runs_kept_latest,
        "created_before": created_before.isoformat(),
    }
    if outcome.event_log_rows_before is not None:
        metadata["event_log_rows_before"] = outcome.event_log_rows_before
        metadata["event_log_rows_after"] = outcome.event_log_rows_after
    yield dg.Output(outcome.runs_deleted, metadata=metadata)


@dg.job(
    executor_def=dg.in_process_executor,
    description="Delete Dagster runs (and their event log rows) older than the retention age, keeping "
    "every run that holds a partition's latest materialization.",
)
def run_retention_job() -> None:
    delete_old_dagster_runs()


run_retention_schedule = dg.ScheduleDefinition(
    name="run_retention_schedule",
    cron_schedule="0 3 * * *",
    job=run_retention_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Dagster housekeeping: delete old runs, keeping those that hold a partition's latest "
    "materialization.",
)
