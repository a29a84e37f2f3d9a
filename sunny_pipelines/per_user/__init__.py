"""The one per-user sync protocol every domain asset uses, and how a domain registers itself.

A run covers a range of `users` partitions (see "How runs work" in shared/DESIGN.md). For each
user the protocol decides whether there is anything to do (the run's trigger: due users for a
schedule, users with notifications for an inbox run, everyone for a first sync or a backfill),
claims the user's inbox rows, holds the (user, service) sync lock, calls the domain's
``work(user_id, claimed_rows)``, then finishes the rows: ``done`` after the work committed,
``failed`` with the error otherwise. `sync_state` records each outcome. Users run concurrently
on a bounded thread pool; each user that succeeded gets its own AssetMaterialization, and the
run then fails naming only the users that failed, so one bad grant never fails the others.

When another run holds a user's lock (a schedule run, an inbox run and a backfill may cover the
same user at once) the run waits up to ``SUNNY_SYNC_LOCK_WAIT_SECONDS`` (default 120 s: a user's
sync takes seconds) and then fails that user with `SyncLockBusy`; the rows it claimed are
marked failed and retried after their backoff. Waiting rather than skipping means that rows
which arrived during the holder's sync are answered by a listing taken after it.
"""

from __future__ import annotations

import functools
import os
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from sqlalchemy import Connection

from sunny_pipelines.db import sync_state
from sunny_pipelines.db.grants import unusable_users
from sunny_pipelines.db.locks import sync_lock
from sunny_pipelines.inbox import rows as inbox_rows
from sunny_pipelines.inbox.claimants import finished_runs
from sunny_pipelines.inbox.rows import InboxRow
from sunny_pipelines.partitions import MAX_USERS_PER_RUN, TRIGGER_TAG, Job, users
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines.vocabulary import Source, Trigger

DEFAULT_MAX_WORKERS = int(os.environ.get("SUNNY_USER_CONCURRENCY", "8"))
LOCK_WAIT_SECONDS = float(os.environ.get("SUNNY_SYNC_LOCK_WAIT_SECONDS", "120"))
# Users named in a failed run's message; all of them are in its metadata.
USERS_NAMED_IN_FAILURE = 5

# What a user's work returns: metadata for a materialization, or None when there was nothing to do.
UserMetadata = Mapping[str, Any] | None
UserWork = Callable[[str], UserMetadata]
SyncWork = Callable[[str, list[InboxRow]], UserMetadata]


class UnknownTrigger(ValueError):
    """A run tagged with a trigger this code does not know: refused rather than syncing everyone."""


def run_trigger(tags: Mapping[str, str]) -> Trigger:
    """The run's trigger; a run without the tag is an operator's backfill (the UI sets none)."""
    value = tags.get(TRIGGER_TAG)
    if value is None:
        return Trigger.BACKFILL
    try:
        return Trigger(value)
    except ValueError:
        known = ", ".join(t.value for t in Trigger)
        raise UnknownTrigger(f"run tag {TRIGGER_TAG}={value!r} is not one of: {known}") from None


@dataclass(frozen=True)
class UserSync:
    """A domain asset's side of the protocol."""

    service: str  # its `sync_state` row, and the name of its lock
    inbox_sources: frozenset[Source] = field(default_factory=frozenset)
    default_interval_seconds: int = sync_state.DEFAULT_INTERVAL_SECONDS
    lock_wait_seconds: float = LOCK_WAIT_SECONDS
    # Its work calls Google: users without a usable grant are skipped, with the reason.
    needs_google_grant: bool = True

    def due(self, conn: Connection, user_ids: Sequence[str], now: datetime) -> set[str]:
        """Who a schedule run works on: users whose interval has elapsed."""
        return sync_state.due_users(conn, self.service, now, user_ids)


@dataclass(frozen=True)
class PushChannels:
    """A domain's Google push channels, as the health checks see them: every user synced for
    ``service`` should hold a live channel of each of ``kinds`` while ``enabled``; a channel is
    renewed ``renew_within`` before it expires by an upkeep that runs every ``renewal_every``."""

    asset: dg.AssetKey  # the channel asset (its check lives there; its partitions page renews)
    service: str
    kinds: tuple[str, ...]
    renew_within: timedelta
    renewal_every: timedelta
    # Push is on for this service (the receiver URL, the Pub/Sub topic is configured).
    enabled: Callable[[GoogleResource], bool]


@dataclass(frozen=True)
class Domain:
    """What a domain package registers: its definitions, and what the shared sensors need to
    know of it. `definitions.py` merges the domains; the inbox sensor and the users sensor are
    built from these descriptors, so neither imports a domain."""

    name: str
    definitions: dg.Definitions
    # Its per-user sync: the service (sync_state row, lock), inbox sources, default interval.
    sync: UserSync | None = None
    # The job answering the sync's inbox sources (runs tagged with the `inbox` trigger).
    inbox_job: Job | None = None
    # The job a newly connected user's first sync runs (with the `first_sync` trigger).
    first_sync_job: Job | None = None
    # The concurrency pool of its assets (one of the old Celery queues).
    pool: str | None = None
    # Its push channels, checked by the health checks.
    push: PushChannels | None = None

    @property
    def inbox_sources(self) -> frozenset[Source]:
        return self.sync.inbox_sources if self.sync and self.inbox_job else frozenset()


def per_user_asset(*, pool: str, group_name: str, kinds: set[str]) -> dict[str, Any]:
    """Decorator arguments of a per-user asset of batched runs: `users` partitions, one
    materialization per user that succeeded (so no output is required), UI backfills split into
    runs of at most `MAX_USERS_PER_RUN` users, and the domain's concurrency pool."""
    return {
        "partitions_def": users,
        "output_required": False,
        "backfill_policy": dg.BackfillPolicy.multi_run(MAX_USERS_PER_RUN),
        "pool": pool,
        "group_name": group_name,
        "kinds": kinds,
    }


def sync_users(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    spec: UserSync,
    work: SyncWork,
    *,
    max_workers: int = DEFAULT_MAX_WORKERS,
) -> Iterator[dg.AssetMaterialization]:
    """Run ``work`` for the users of this run that have something to do, under the protocol."""
    trigger = run_trigger(context.run.tags)
    user_ids = list(context.partition_keys)
    run_id = context.run_id
    # Rows claimed by a run that has finished are free to claim again.
    claims_void = functools.partial(finished_runs, context.instance)
    if spec.needs_google_grant:
        with database.begin() as conn:
            without_grant = unusable_users(conn, user_ids)
        if without_grant:
            yield from skip_without_grant(context, database, spec, without_grant, claims_void)
            user_ids = [user_id for user_id in user_ids if user_id not in without_grant]
    everyone = trigger in (Trigger.FIRST_SYNC, Trigger.BACKFILL, Trigger.UPSTREAM)
    scheduled: set[str] = set()
    with database.begin() as conn:
        if trigger == Trigger.SCHEDULE:
            scheduled = spec.due(conn, user_ids, datetime.now(UTC))
        # A run may span many users with nothing to do (a range covers every partition between
        # its due users): one query finds who has inbox rows, instead of a claim per user.
        with_rows = inbox_rows.users_with_rows_to_claim(conn, user_ids, spec.inbox_sources, datetime.now(UTC))
    if not everyone:
        idle = len(user_ids)
        user_ids = [user_id for user_id in user_ids if user_id in scheduled or user_id in with_rows]
        idle -= len(user_ids)
        if idle:
            context.log.info(f"{idle} users of this run's range are not due and have no inbox rows")

    def sync_one(user_id: str) -> UserMetadata:
        # Claimed before taking the lock: rows that arrive while another run syncs this user are
        # held for this run (the holder's listing may predate them), never taken by a third.
        claimed: list[InboxRow] = []
        if user_id in with_rows:
            with database.begin() as conn:
                claimed = inbox_rows.claim(
                    conn, user_id, spec.inbox_sources, run_id, datetime.now(UTC), claims_void
                )
        if not (claimed or everyone or user_id in scheduled):
            return None
        try:
            with sync_lock(database.engine, user_id, spec.service, spec.lock_wait_seconds):
                if not (claimed or everyone):
                    # Still due now that we hold the lock? Another run may have just synced.
                    with database.begin() as conn:
                        if user_id not in spec.due(conn, [user_id], datetime.now(UTC)):
                            return None
                metadata = work(user_id, claimed)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            with database.begin() as conn:
                inbox_rows.mark_failed(conn, claimed, run_id, error, datetime.now(UTC))
                sync_state.record_failure(
                    conn,
                    user_id,
                    spec.service,
                    error,
                    default_interval_seconds=spec.default_interval_seconds,
                    trigger=trigger.value,
                )
            raise
        with database.begin() as conn:
            done = inbox_rows.mark_done(conn, claimed, run_id, datetime.now(UTC))
            if metadata is None:  # the domain found nothing to do for these rows
                return None
            sync_state.record_success(
                conn,
                user_id,
                spec.service,
                int(metadata.get("change_count", 0)),
                default_interval_seconds=spec.default_interval_seconds,
                trigger=trigger.value,
            )
        return {**metadata, "trigger": trigger.value, "inbox_rows_done": done}

    yield from for_each_user(context, user_ids, sync_one, max_workers=max_workers)


def skip_without_grant(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    spec: UserSync,
    reasons: Mapping[str, str],
    claims_void: inbox_rows.FinishedRuns,
) -> Iterator[dg.AssetObservation]:
    """Users whose grant cannot be used (waiting for re-consent, revoked, deleted) are not synced:
    their inbox rows are rejected with the reason (their saved cursor catches up once they
    reconnect, so nothing is lost), the run log names them, and each partition gets an
    observation saying why it was skipped."""
    now = datetime.now(UTC)
    for user_id, reason in sorted(reasons.items()):
        with database.begin() as conn:
            rejected = inbox_rows.reject(
                conn, user_id, spec.inbox_sources, f"skipped: {reason}", context.run_id, now, claims_void
            )
        yield dg.AssetObservation(
            asset_key=context.asset_key,
            partition=user_id,
            metadata={"skipped": reason, "inbox_rows_rejected": rejected},
        )
    named = sorted(reasons.items())[:USERS_NAMED_IN_FAILURE]
    more = len(reasons) - len(named)
    context.log.warning(
        f"skipped {len(reasons)} users without a usable Google grant: "
        + "; ".join(f"{user}: {reason[:300]}" for user, reason in named)
        + (f"; and {more} more (see each partition's observation)" if more else "")
    )


def for_each_user(
    context: dg.AssetExecutionContext,
    user_ids: list[str],
    work: UserWork,
    *,
    max_workers: int = DEFAULT_MAX_WORKERS,
) -> Iterator[dg.AssetMaterialization]:
    """Per-partition truth for a batched run: a materialization per user whose ``work`` returned
    metadata, nothing for users it skipped (None), and a `Failure` naming those that raised."""
    failures: dict[str, str] = {}
    skipped = 0
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(user_ids) or 1))) as pool:
        futures = {pool.submit(_timed, work, user_id): user_id for user_id in user_ids}
        for future in as_completed(futures):
            user_id = futures[future]
            try:
                metadata = future.result()
            except Exception as exc:  # one user's failure must not fail the others
                failures[user_id] = f"{type(exc).__name__}: {exc}"
                context.log.warning(
                    f"user {user_id} failed: {failures[user_id]}\n"
                    + "".join(traceback.format_exception(exc, limit=-3))
                )
                continue
            if metadata is None:
                skipped += 1
                continue
            yield dg.AssetMaterialization(
                asset_key=context.asset_key, partition=user_id, metadata=dict(metadata)
            )
    context.log.info(
        f"{len(user_ids) - skipped - len(failures)} users materialized, {skipped} skipped "
        f"(nothing to do), {len(failures)} failed in {time.monotonic() - started:.1f}s"
    )
    if failures:
        raise failure_of(failures, len(user_ids))


def failure_of(failures: Mapping[str, str], user_count: int) -> dg.Failure:
    """The run's Failure: a bounded message naming the first few users, every one in metadata."""
    named = sorted(failures.items())[:USERS_NAMED_IN_FAILURE]
    more = len(failures) - len(named)
    description = f"{len(failures)} of {user_count} users failed: " + "; ".join(
        f"{user}: {reason[:300]}" for user, reason in named
    )
    if more:
        description += f"; and {more} more (see the failed_users metadata)"
    return dg.Failure(
        description=description,
        metadata={"failed_users": dg.MetadataValue.json(dict(failures))},
        allow_retries=False,
    )


def best_effort(
    context: dg.AssetExecutionContext, what: str, step: Callable[[], Mapping[str, Any]]
) -> dict[str, Any]:
    """Run an upkeep ``step`` after a good sync (such as opening push channels) whose failure must
    not fail the user's data: its error becomes metadata and a warning instead."""
    try:
        return dict(step())
    except Exception as exc:
        context.log.warning(f"{what} failed (the data synced): {type(exc).__name__}: {exc}")
        return {f"{what}_error": f"{type(exc).__name__}: {exc}"[:500]}


def _timed(work: UserWork, user_id: str) -> UserMetadata:
    started = time.monotonic()
    metadata = work(user_id)
    if metadata is None:
        return None
    return {**metadata, "duration_seconds": round(time.monotonic() - started, 3)}
