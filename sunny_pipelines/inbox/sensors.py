"""The inbox sensor: pending `webhook_inbox` rows become batched incremental runs.

Side-effect free: it reads rows after its cursor (and rows whose earlier run failed or vanished),
groups them by user and returns run requests plus `users` partitions to add. The runs claim and
finish the rows (see `sunny_pipelines.inbox.rows`). It is built from the domains' registrations
(`build_webhook_inbox_sensor`): which job answers which source. It imports no domain.

Ids are handed out when a row is inserted but become visible when it commits, so a row can
commit after a higher id was read. The cursor remembers the ids it skipped over (gaps) for a
while and looks for them again on each tick, so a late commit is picked up on the next tick.
"""

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg

from sunny_pipelines.inbox import rows as inbox_rows
from sunny_pipelines.inbox.claimants import finished_runs
from sunny_pipelines.inbox.rows import InboxRow
from sunny_pipelines.partitions import RUNS_PER_TICK, TRIGGER_TAG, Job, plan_user_ranges, range_tags, users
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.vocabulary import InboxStatus, Trigger

PAGE_SIZE = 2000
# A requested run normally claims its rows within seconds; past these, it is presumed lost.
UNCLAIMED_LEASE = timedelta(minutes=10)
CLAIMED_LEASE = timedelta(minutes=30)
# How long a skipped id is looked for. The receiver's transactions last seconds (statement and
# lock timeouts); ids never committed (a rollback, a duplicate's ON CONFLICT) are forgotten after.
GAP_TTL = timedelta(minutes=2)
MAX_GAPS = 10_000
# Inbox runs answer a change a user is waiting on: the run queue starts them before schedule
# runs (the fleet benchmark saw pushes wait minutes behind a tick's batch runs).
PRIORITY_TAG = "dagster/priority"
INBOX_RUN_PRIORITY = "10"

JobForSource = Mapping[str, str]


@dataclass(frozen=True)
class InboxCursor:
    last_id: int = 0
    # Ids below last_id not committed when read, with when they were first missed (epoch seconds).
    gaps: dict[int, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: str | None) -> "InboxCursor":
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(int(data.get("last_id", 0)), {int(k): float(v) for k, v in data.get("gaps", {}).items()})

    def dump(self) -> str:
        return json.dumps({"last_id": self.last_id, "gaps": {str(k): v for k, v in self.gaps.items()}})

    def advance(self, seen: Collection[int], now: datetime) -> "InboxCursor":
        """The cursor after reading the ids ``seen`` (after ``last_id`` or among the gaps)."""
        stamp = now.timestamp()
        new_last = max([self.last_id, *seen])
        seen_set = set(seen)
        gaps = {
            i: t for i, t in self.gaps.items() if i not in seen_set and stamp - t < GAP_TTL.total_seconds()
        }
        after = sorted(i for i in seen_set if i > self.last_id)
        if after:
            gaps.update((i, stamp) for i in range(self.last_id + 1, after[-1]) if i not in seen_set)
        if len(gaps) > MAX_GAPS:  # keep the newest ids: the oldest gaps are the likeliest unused
            gaps = dict(sorted(gaps.items())[-MAX_GAPS:])
        return InboxCursor(new_last, gaps)


def needs_new_run(row: InboxRow, run_is_alive: bool | None, now: datetime) -> bool:
    """Whether a row at or before the cursor needs another run.

    ``run_is_alive``: whether the run that claimed it is still queued or running (None: unclaimed).
    """
    if row.status == InboxStatus.FAILED:
        return True  # the query only returns failed rows whose backoff is over
    if row.claimed_by is None:
        return now - row.received_at > UNCLAIMED_LEASE
    return not run_is_alive or now - (row.claimed_at or now) > CLAIMED_LEASE


def _state_digest(rows: Sequence[InboxRow]) -> str:
    # Rows in the same state are the same request (deduplicated by Dagster); any change of state
    # (another attempt, a new claimant, a replay) makes a new one.
    state = sorted((r.id, r.attempts, r.status, r.claimed_by or "") for r in rows)
    return hashlib.sha256(repr(state).encode()).hexdigest()[:12]


def plan_inbox_runs(
    rows: Sequence[InboxRow], ordered_keys: Sequence[str], now: datetime, job_for_source: JobForSource
) -> tuple[list[dg.RunRequest], list[str]]:
    """(run requests, users to add as partitions) for rows that need a run.

    Users are batched into partition ranges per job; each run key names the newest row the run
    covers and the state of its rows, so a re-request after a failure or a lost run is a new run.
    """
    known = set(ordered_keys)
    new_users = list(dict.fromkeys(r.user_id for r in rows if r.user_id and r.user_id not in known))
    keys = list(ordered_keys) + new_users
    position = {key: index for index, key in enumerate(keys)}
    requests: list[dg.RunRequest] = []
    for job_name in sorted({job_for_source[r.source] for r in rows}):
        by_user: dict[str, list[InboxRow]] = {}
        for row in rows:
            if job_for_source[row.source] == job_name and row.user_id:
                by_user.setdefault(row.user_id, []).append(row)
        for start, end in plan_user_ranges(keys, by_user, max_runs=RUNS_PER_TICK):
            span = keys[position[start] : position[end] + 1]
            covered = [row for user in span for row in by_user.get(user, [])]
            newest = max(row.id for row in covered)
            stale = any(
                r.claimed_by is None and r.status == InboxStatus.PENDING and r.id < newest for r in covered
            )
            suffix = f":lease{int(now.timestamp() // UNCLAIMED_LEASE.total_seconds())}" if stale else ""
            requests.append(
                dg.RunRequest(
                    run_key=f"inbox:{job_name}:{newest}:{_state_digest(covered)}{suffix}:{start}..{end}",
                    job_name=job_name,
                    tags={
                        **range_tags(start, end),
                        TRIGGER_TAG: Trigger.INBOX.value,
                        PRIORITY_TAG: INBOX_RUN_PRIORITY,
                        "sunny/inbox_rows": str(len(covered)),
                    },
                )
            )
    return requests, new_users


def build_webhook_inbox_sensor(
    jobs_by_source: Mapping[str, Job],
) -> dg.SensorDefinition:
    """The inbox sensor for the domains' registrations: source -> the job that answers it.
    Rows of sources no domain answers stay pending, visible in the table."""
    job_for_source = {source: job.name for source, job in jobs_by_source.items()}
    sources = sorted(job_for_source)

    @dg.sensor(
        jobs=list({job.name: job for job in jobs_by_source.values()}.values()),
        # The daemon evaluates sensors every 5 s at best; asking for 5 makes ticks that start a
        # hair late skip a whole loop (10 s gaps), so ask for less and get every loop.
        minimum_interval_seconds=1,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Turns webhook notifications in `webhook_inbox` into batched incremental runs "
        "for the users concerned; re-requests rows whose run failed (with backoff) or was lost.",
    )
    def webhook_inbox_sensor(
        context: dg.SensorEvaluationContext, database: DatabaseResource
    ) -> dg.SensorResult:
        cursor = InboxCursor.parse(context.cursor)
        now = datetime.now(UTC)
        with database.begin() as conn:
            after = inbox_rows.read_after(conn, cursor.last_id, PAGE_SIZE)
            late = inbox_rows.read_ids(conn, cursor.gaps)
            earlier = inbox_rows.read_retryable(conn, cursor.last_id, now, PAGE_SIZE, sources)
        seen = [r.id for r in after + late]
        new = [r for r in after + late if r.status == InboxStatus.PENDING and r.source in job_for_source]
        new_ids = {r.id for r in new}
        claimants = {r.claimed_by for r in earlier if r.claimed_by}
        alive = claimants - finished_runs(context.instance, claimants)
        retry = [
            r
            for r in earlier
            if r.id not in new_ids and needs_new_run(r, r.claimed_by in alive if r.claimed_by else None, now)
        ]
        next_cursor = cursor.advance(seen, now)
        if not new and not retry:
            return dg.SensorResult(
                skip_reason=f"no pending notifications after row {cursor.last_id}", cursor=next_cursor.dump()
            )
        keys = context.instance.get_dynamic_partitions(users.name)
        run_requests, new_users = plan_inbox_runs(new + retry, keys, now, job_for_source)
        context.log.info(
            f"{len(new)} new and {len(retry)} retried rows -> {len(run_requests)} runs"
            + (f", {len(new_users)} new users" if new_users else "")
            + (f", {len(late)} committed late" if late else "")
        )
        return dg.SensorResult(
            run_requests=run_requests,
            dynamic_partitions_requests=[users.build_add_request(new_users)] if new_users else None,
            cursor=next_cursor.dump(),
        )

    return webhook_inbox_sensor
