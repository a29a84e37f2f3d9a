"""The inbox sensor: pending `webhook_inbox` rows become batched incremental runs.

Side-effect free: it reads rows after its cursor (and rows whose earlier run failed or vanished),
groups them by user and returns run requests plus `users` partitions to add. The runs claim and
finish the rows (see `sunny_pipelines.inbox.rows`).
"""

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg

from sunny_pipelines.calendar.jobs import calendar_sync_job
from sunny_pipelines.inbox import rows as inbox_rows
from sunny_pipelines.inbox.rows import InboxRow
from sunny_pipelines.partitions import TRIGGER_TAG, plan_user_ranges, range_tags, users
from sunny_pipelines.resources.database import DatabaseResource

# Which job answers which notification source. Sources without a job yet stay pending.
JOB_FOR_SOURCE = {"google_calendar": calendar_sync_job.name}
PAGE_SIZE = 2000
# A requested run normally claims its rows within seconds; past these, it is presumed lost.
UNCLAIMED_LEASE = timedelta(minutes=10)
CLAIMED_LEASE = timedelta(minutes=30)


@dataclass(frozen=True)
class InboxCursor:
    last_id: int = 0

    @classmethod
    def parse(cls, raw: str | None) -> "InboxCursor":
        return cls(**json.loads(raw)) if raw else cls()

    def dump(self) -> str:
        return json.dumps({"last_id": self.last_id})


def needs_new_run(row: InboxRow, run_is_alive: bool | None, now: datetime) -> bool:
    """Whether a row at or before the cursor needs another run.

    ``run_is_alive``: whether the run that claimed it is still queued or running (None: unclaimed).
    """
    if row.status == "failed":
        return True  # the query only returns failed rows whose backoff is over
    if row.claimed_by is None:
        return now - row.received_at > UNCLAIMED_LEASE
    return not run_is_alive or now - (row.claimed_at or now) > CLAIMED_LEASE


def plan_inbox_runs(
    rows: Sequence[InboxRow], ordered_keys: Sequence[str], now: datetime
) -> tuple[list[dg.RunRequest], list[str]]:
    """(run requests, users to add as partitions) for rows that need a run.

    Users are batched into partition ranges per job; each run key names the newest row the run
    covers and the attempt it is, so a re-request after a failure or a lost run is a new run.
    """
    known = set(ordered_keys)
    new_users = list(dict.fromkeys(r.user_id for r in rows if r.user_id and r.user_id not in known))
    keys = list(ordered_keys) + new_users
    position = {key: index for index, key in enumerate(keys)}
    requests: list[dg.RunRequest] = []
    for job_name in sorted({JOB_FOR_SOURCE[r.source] for r in rows}):
        job_rows = [r for r in rows if JOB_FOR_SOURCE[r.source] == job_name and r.user_id]
        by_user: dict[str, list[InboxRow]] = {}
        for row in job_rows:
            by_user.setdefault(row.user_id, []).append(row)  # type: ignore[arg-type]
        for start, end in plan_user_ranges(keys, by_user):
            span = keys[position[start] : position[end] + 1]
            covered = [row for user in span for row in by_user.get(user, [])]
            newest = max(row.id for row in covered)
            attempt = max(row.attempts for row in covered)
            stale = any(r.claimed_by is None and r.status == "pending" and r.id < newest for r in covered)
            suffix = f":lease{int(now.timestamp() // UNCLAIMED_LEASE.total_seconds())}" if stale else ""
            requests.append(
                dg.RunRequest(
                    run_key=f"inbox:{job_name}:{newest}:{attempt}{suffix}:{start}..{end}",
                    job_name=job_name,
                    tags={
                        **range_tags(start, end),
                        TRIGGER_TAG: "inbox",
                        "sunny/inbox_rows": str(len(covered)),
                    },
                )
            )
    return requests, new_users


def _alive_runs(instance: dg.DagsterInstance, run_ids: Collection[str]) -> set[str]:
    alive = set()
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            alive.add(run_id)
    return alive


@dg.sensor(
    jobs=[calendar_sync_job],
    # The daemon evaluates sensors every 5 s at best; asking for 5 makes ticks that start a hair
    # late skip a whole loop (10 s gaps), so ask for less and get every loop.
    minimum_interval_seconds=1,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Turns webhook notifications in `webhook_inbox` into batched incremental runs for "
    "the users concerned; re-requests rows whose run failed (with backoff) or was lost.",
)
def webhook_inbox_sensor(
    context: dg.SensorEvaluationContext, database: DatabaseResource
) -> dg.SensorResult | dg.SkipReason:
    cursor = InboxCursor.parse(context.cursor)
    now = datetime.now(UTC)
    with database.begin() as conn:
        new = inbox_rows.read_new(conn, cursor.last_id, PAGE_SIZE, JOB_FOR_SOURCE)
        earlier = inbox_rows.read_retryable(conn, cursor.last_id, now, PAGE_SIZE, JOB_FOR_SOURCE)
    alive = _alive_runs(context.instance, {r.claimed_by for r in earlier if r.claimed_by})
    retry = [r for r in earlier if needs_new_run(r, r.claimed_by in alive if r.claimed_by else None, now)]
    next_cursor = InboxCursor(max([cursor.last_id] + [r.id for r in new]))
    if not new and not retry:
        return dg.SkipReason(f"no pending notifications after row {cursor.last_id}")
    keys = context.instance.get_dynamic_partitions(users.name)
    run_requests, new_users = plan_inbox_runs(new + retry, keys, now)
    context.log.info(
        f"{len(new)} new and {len(retry)} retried rows -> {len(run_requests)} runs"
        + (f", {len(new_users)} new users" if new_users else "")
    )
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[users.build_add_request(new_users)] if new_users else None,
        cursor=next_cursor.dump(),
    )
