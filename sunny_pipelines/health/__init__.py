"""Operations: the health an operator can see. Built by the code location from every domain's
registration (as the users sensor and the sync optimization are), so a new per-user domain gets
its `sync_freshness` check, and a domain with push channels its `push_channels_live` check,
without a line here:

- checks: `sync_freshness` on each per-user sync asset, `push_channels_live` on each push channel
  asset, `inbox_pending_age` and `inbox_dead_letters` on `webhook_inbox`; all in the
  `health_checks` job, run by `health_checks_schedule` (every 5 min) and, after a domain's runs
  finish, by `health_checks_after_runs_sensor` (the checks of that domain's assets and the inbox);
- `fleet_health` (group `operations`), refreshed by `fleet_health_schedule` every 5 min.
"""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import dagster as dg

from sunny_pipelines.health.checks import (
    channels_check,
    freshness_check,
    inbox_dead_letters,
    inbox_pending_age,
    webhook_inbox,
)
from sunny_pipelines.health.fleet import build_fleet_health
from sunny_pipelines.inbox.jobs import replay_inbox
from sunny_pipelines.per_user import Domain

HEALTH_CHECKS_JOB = "health_checks"
FLEET_HEALTH_JOB = "fleet_health_job"
# Runs finishing within this share one checks run (at most one per sensor tick).
AFTER_RUNS_INTERVAL_SECONDS = 60
# Finished runs read per sensor tick (the cursor carries on from the last one read).
RUNS_PER_TICK = 1000


def sync_asset(domain: Domain) -> dg.AssetKey:
    """The per-user asset of a domain's registered sync: what its first-sync (or inbox) job selects."""
    job = domain.first_sync_job or domain.inbox_job
    if job is None:
        raise ValueError(f"domain {domain.name} registers a sync but no job running it")
    assets = [a for a in domain.definitions.assets or [] if isinstance(a, dg.AssetsDefinition)]
    keys = job.selection.resolve(assets)
    if len(keys) != 1:
        raise ValueError(
            f"domain {domain.name}'s job {job.name} selects {len(keys)} assets, not its one sync asset"
        )
    return next(iter(keys))


def checks_after_runs(finished_jobs: Sequence[str], checks_by_job: Mapping[str, Sequence[dg.AssetCheckKey]]):
    """The checks whose subject the finished runs' jobs may have changed."""
    return sorted(
        {key for job in finished_jobs for key in checks_by_job.get(job, ())},
        key=lambda key: key.to_user_string(),
    )


def build_health(domains: Sequence[Domain]) -> dg.Definitions:
    """The health checks, `fleet_health`, their jobs, schedules and the after-runs sensor."""
    inbox_checks = [inbox_pending_age, inbox_dead_letters]
    checks: list[dg.AssetChecksDefinition] = list(inbox_checks)
    inbox_keys = [key for check in inbox_checks for key in check.check_keys]
    checks_by_job: dict[str, list[dg.AssetCheckKey]] = {replay_inbox.name: list(inbox_keys)}
    default_intervals: dict[str, int] = {}
    for domain in domains:
        domain_checks = []
        if domain.sync:
            domain_checks.append(freshness_check(domain.sync, sync_asset(domain)))
            default_intervals[domain.sync.service] = domain.sync.default_interval_seconds
        if domain.push:
            domain_checks.append(channels_check(domain.push))
        if not domain_checks:
            continue
        checks += domain_checks
        keys = [key for check in domain_checks for key in check.check_keys]
        for job in domain.definitions.jobs or []:
            checks_by_job[job.name] = [*keys, *inbox_keys]

    fleet_health = build_fleet_health(default_intervals)
    checks_job = dg.define_asset_job(
        HEALTH_CHECKS_JOB,
        selection=dg.AssetSelection.checks(*checks),
        executor_def=dg.in_process_executor,
        description="Every health check: sync freshness per service, push channels, the inbox backlog and "
        "dead letters (Assets → the checked asset → Checks).",
    )
    fleet_job = dg.define_asset_job(
        FLEET_HEALTH_JOB,
        selection=dg.AssetSelection.assets(fleet_health).without_checks(),
        executor_def=dg.in_process_executor,
        description="Refresh fleet_health (Assets → fleet_health).",
    )
    schedules = [
        dg.ScheduleDefinition(
            name="health_checks_schedule",
            cron_schedule="*/5 * * * *",
            job=checks_job,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="Run every health check every 5 minutes.",
        ),
        dg.ScheduleDefinition(
            name="fleet_health_schedule",
            cron_schedule="*/5 * * * *",
            job=fleet_job,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="Refresh fleet_health every 5 minutes.",
        ),
    ]

    @dg.sensor(
        name="health_checks_after_runs_sensor",
        job=checks_job,
        minimum_interval_seconds=AFTER_RUNS_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="After a domain's runs finish (or replay_inbox), run the checks of that domain's assets "
        "and of the inbox, at most once a minute.",
    )
    def health_checks_after_runs(context: dg.SensorEvaluationContext):
        if context.cursor is None:
            # Start from now: runs that finished before the sensor existed need no checks run.
            context.update_cursor(datetime.now(UTC).isoformat())
            return dg.SkipReason("watching runs that finish from now on")
        records = context.instance.get_run_records(
            filters=dg.RunsFilter(
                statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE],
                updated_after=datetime.fromisoformat(context.cursor),
            ),
            limit=RUNS_PER_TICK,
            ascending=True,
        )
        if not records:
            return dg.SkipReason("no run finished since the last tick")
        cursor = max(record.update_timestamp for record in records).isoformat()
        context.update_cursor(cursor)
        keys = checks_after_runs([record.dagster_run.job_name for record in records], checks_by_job)
        if not keys:
            return dg.SkipReason(f"{len(records)} runs finished, none of a checked domain")
        return dg.RunRequest(run_key=f"health_checks_after_runs:{cursor}", asset_check_keys=keys)

    return dg.Definitions(
        assets=[webhook_inbox, fleet_health],
        asset_checks=checks,
        jobs=[checks_job, fleet_job],
        schedules=schedules,
        sensors=[health_checks_after_runs],
    )
