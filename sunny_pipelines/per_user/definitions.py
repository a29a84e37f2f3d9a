"""The Dagster definitions every per-user domain needs, built one way: the job of an asset over
`users` ranges, the schedule that syncs the users whose interval has elapsed, and the schedule
that runs an upkeep job (push channels) for the users needing it."""

from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg
from sqlalchemy import Connection

from sunny_pipelines.partitions import Job, range_run_requests, users
from sunny_pipelines.per_user import UserSync
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines.vocabulary import Trigger

# Who an upkeep schedule covers: the users needing it now, or why nobody can be covered.
UsersNeeding = Callable[[Connection, datetime, GoogleResource], "set[str] | dg.SkipReason"]


def per_user_job(name: str, asset: dg.AssetsDefinition, description: str) -> Job:
    """The job running ``asset`` for a range of `users` partitions."""
    # In-process: a sync is I/O bound, and a subprocess per step would add seconds to every run.
    return dg.define_asset_job(
        name,
        selection=[asset],
        partitions_def=users,
        executor_def=dg.in_process_executor,
        description=description,
    )


def _batched_runs(
    context: dg.ScheduleEvaluationContext,
    name: str,
    job: Job,
    keys: list[str],
    selected: set[str],
    nothing: str,
) -> dg.SkipReason | list[dg.RunRequest]:
    """One schedule tick's batched runs of ``job`` over ``selected`` users, or why there are none."""
    if not selected:
        return dg.SkipReason(nothing)
    tick = (context.scheduled_execution_time or datetime.now(UTC)).isoformat()
    return range_run_requests(
        keys, selected, run_key_prefix=f"{name}:{tick}", trigger=Trigger.SCHEDULE, job_name=job.name
    )


def due_users_schedule(
    *, name: str, cron_schedule: str, job: Job, sync: UserSync, description: str
) -> dg.ScheduleDefinition:
    """A beat entry: batched runs of ``job`` over the users whose ``sync`` interval has elapsed."""

    @dg.schedule(
        name=name,
        cron_schedule=cron_schedule,
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description,
    )
    def due_users(
        context: dg.ScheduleEvaluationContext, database: DatabaseResource
    ) -> dg.SkipReason | list[dg.RunRequest]:
        keys = context.instance.get_dynamic_partitions(users.name)
        with database.begin() as conn:
            due = sync.due(conn, keys, datetime.now(UTC))
        return _batched_runs(
            context, name, job, keys, due, f"none of {len(keys)} users is due for a {sync.service} sync"
        )

    return due_users


def upkeep_schedule(
    *,
    name: str,
    cron_schedule: str,
    job: Job,
    users_needing: UsersNeeding,
    nothing_to_do: str,
    description: str,
) -> dg.ScheduleDefinition:
    """A beat entry: batched runs of ``job`` over the users ``users_needing`` names."""

    @dg.schedule(
        name=name,
        cron_schedule=cron_schedule,
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description,
    )
    def upkeep(
        context: dg.ScheduleEvaluationContext, database: DatabaseResource, google: GoogleResource
    ) -> dg.SkipReason | list[dg.RunRequest]:
        keys = context.instance.get_dynamic_partitions(users.name)
        with database.begin() as conn:
            needing = users_needing(conn, datetime.now(UTC), google)
        if isinstance(needing, dg.SkipReason):
            return needing
        return _batched_runs(context, name, job, keys, needing & set(keys), nothing_to_do)

    return upkeep
