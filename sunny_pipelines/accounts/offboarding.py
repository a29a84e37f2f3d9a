"""Revocation and offboarding (the old `revoke_expired_tokens()`), daily 03:00.

Grants of users who disconnected Google in the frontend (connection `disconnected`), who were
deleted (`users.status = deleted`), or who have waited for re-consent longer than
`SUNNY_REAUTH_GRACE_DAYS` (30) are revoked at Google's revoke endpoint after their push channels
are stopped; their tokens are erased and the connection is `revoked`. Google refusing the
revocation (the grant already gone there) is logged, never fatal: the tokens are erased anyway.

A deleted user is then purged: every row of theirs in every table with a `user_id` column or a
foreign key to `users` (found in the database at run time, so tables added later are covered),
the meetings nobody else takes part in (their bots deleted at Attendee first), and the `users`
row; their Dagster partition is removed (and its history wiped where the instance's storage
supports it).
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import dagster as dg
import requests
from dagster._core.storage.event_log.schema import AssetEventTagsTable, SqlEventLogStorageTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from sqlalchemy import Connection, MetaData, Table, delete, or_, select, update

from sunny_pipelines.accounts.tokens import TransientGoogleError, with_retries
from sunny_pipelines.db.models import GoogleConnection, Meeting, MeetingBot, MeetingParticipant, User
from sunny_pipelines.partitions import users
from sunny_pipelines.resources.attendee import AttendeeError, AttendeeResource
from sunny_pipelines.resources.channels import stop_user_channels
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleResource
from sunny_pipelines.vocabulary import GrantStatus, UserStatus

REAUTH_GRACE = timedelta(days=float(os.environ.get("SUNNY_REAUTH_GRACE_DAYS", "30")))
# Bot states after which Attendee will not join the meeting any more (ours: `deleted`).
FINISHED_BOT_STATES = frozenset({"ended", "fatal_error", "deleted"})


class Offboarding(StrEnum):
    REVOKE = "revoke"  # revoke the grant, erase its tokens; the user stays
    PURGE = "purge"  # revoke, then erase every row of the user and their partition


def offboarding_for(
    user_status: str | None,
    grant_status: str | None,
    needs_reauth_since: datetime | None,
    has_tokens: bool,
    now: datetime,
    grace: timedelta,
) -> tuple[Offboarding, str] | None:
    """What happens to a user's grant today, and why (None: nothing)."""
    if user_status == UserStatus.DELETED:
        return Offboarding.PURGE, "user deleted"
    if grant_status == GrantStatus.DISCONNECTED:
        return Offboarding.REVOKE, "user disconnected Google"
    if grant_status == GrantStatus.NEEDS_REAUTH:
        since = needs_reauth_since or now
        if now - since >= grace:
            return (
                Offboarding.REVOKE,
                f"waiting for re-consent since {since:%Y-%m-%d}, over {grace.days} days",
            )
    if grant_status == GrantStatus.REVOKED and has_tokens:
        return Offboarding.REVOKE, "revoked grant still holds tokens"
    return None


@dataclass(frozen=True)
class Candidate:
    user_id: str
    action: Offboarding
    why: str


def candidates(conn: Connection, now: datetime, grace: timedelta = REAUTH_GRACE) -> list[Candidate]:
    rows = conn.execute(
        select(
            User.id,
            User.status,
            GoogleConnection.status,
            GoogleConnection.needs_reauth_since,
            or_(GoogleConnection.access_token.is_not(None), GoogleConnection.refresh_token.is_not(None)),
        )
        .join(GoogleConnection, GoogleConnection.user_id == User.id, isouter=True)
        .where(
            or_(
                User.status == UserStatus.DELETED,
                GoogleConnection.status.in_(
                    [GrantStatus.DISCONNECTED, GrantStatus.NEEDS_REAUTH, GrantStatus.REVOKED]
                ),
            )
        )
        .order_by(User.id)
    ).all()
    found = []
    for user_id, user_status, grant_status, since, has_tokens in rows:
        decision = offboarding_for(user_status, grant_status, since, bool(has_tokens), now, grace)
        if decision is not None:
            found.append(Candidate(user_id, *decision))
    return found


# -- revocation --------------------------------------------------------------------------------------


def revoke_at_google(google: GoogleResource, token: str) -> str:
    """Revoke the grant a token belongs to (either token revokes the whole grant); what Google
    said, in words (no token)."""

    def call() -> requests.Response:
        response = requests.post(google.revoke_uri, data={"token": token}, timeout=google.timeout_seconds)
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientGoogleError(f"revoke answered {response.status_code}")
        return response

    response = with_retries(call, attempts=3, backoff_seconds=1)
    if response.status_code == 200:
        return "revoked at Google"
    try:
        error = response.json().get("error") or response.status_code
    except ValueError:
        error = response.status_code
    return f"Google refused the revocation ({error}): the grant was already gone there"


def revoke_grant(log: Any, google: GoogleResource, database: DatabaseResource, user_id: str, why: str) -> str:
    """Stop the user's channels (at Google while the grant allows), revoke the grant at Google,
    erase its tokens and mark it `revoked`. Returns what happened, for the log."""
    stopped = stop_user_channels(log, google, database, user_id)
    with database.begin() as conn:
        row = conn.execute(
            select(GoogleConnection.access_token, GoogleConnection.refresh_token).where(
                GoogleConnection.user_id == user_id
            )
        ).first()
    if row is None:
        return f"{why}: no Google connection"
    token = google.cipher.decrypt(row.refresh_token) or google.cipher.decrypt(row.access_token)
    if token is None:
        outcome = "no token left to revoke"
    else:
        try:
            outcome = revoke_at_google(google, token)
        except Exception as exc:  # not fatal: the tokens are erased all the same
            outcome = f"revocation at Google failed ({type(exc).__name__}: {str(exc)[:200]})"
            log.warning(f"user {user_id}: {outcome}; tokens erased anyway")
    now = datetime.now(UTC)
    with database.begin() as conn:
        conn.execute(
            update(GoogleConnection)
            .where(GoogleConnection.user_id == user_id)
            .values(
                access_token=None,
                refresh_token=None,
                expires_at=None,
                status=GrantStatus.REVOKED,
                revoked_at=now,
                last_error=f"{why}; {outcome}; tokens erased"[:2000],
                updated_at=now,
            )
        )
    return f"{why}; {stopped} channels stopped; {outcome}; tokens erased"


# -- purge -----------------------------------------------------------------------------------------


def user_columns(metadata: MetaData) -> list[tuple[Table, str]]:
    """(table, column naming the user) for every table holding user rows, children first: a
    `user_id` column, or any column with a foreign key to `users.id`."""
    found = []
    for table in reversed(metadata.sorted_tables):
        if table.name == User.__tablename__:
            continue
        columns = {"user_id"} & set(table.c.keys())
        columns |= {
            fk.parent.name
            for fk in table.foreign_keys
            if fk.column.table.name == User.__tablename__ and fk.column.name == "id"
        }
        found.extend((table, column) for column in sorted(columns))
    return found


def reflected_schema(conn: Connection) -> MetaData:
    """The tables as the database has them now, whoever added them."""
    metadata = MetaData()
    metadata.reflect(bind=conn)
    return metadata


def purge_user_rows(conn: Connection, user_id: str) -> tuple[dict[str, int], list[int]]:
    """Delete every row of ``user_id``, the `users` row last. Returns the rows deleted per table,
    and the meetings the user took part in (shared rows: the caller decides about them)."""
    meeting_ids = list(
        conn.execute(
            select(MeetingParticipant.meeting_id).where(MeetingParticipant.user_id == user_id)
        ).scalars()
    )
    deleted: dict[str, int] = {}
    for table, column in user_columns(reflected_schema(conn)):
        count = conn.execute(delete(table).where(table.c[column] == user_id)).rowcount
        if count:
            deleted[table.name] = deleted.get(table.name, 0) + count
    deleted[User.__tablename__] = conn.execute(delete(User).where(User.id == user_id)).rowcount
    return deleted, meeting_ids


def remove_orphan_meetings(
    log: Any, database: DatabaseResource, attendee: AttendeeResource, meeting_ids: list[int]
) -> int:
    """Meetings among ``meeting_ids`` that nobody takes part in any more: their scheduled bots are
    deleted at Attendee and their recorded data there too, then the meetings (with their bots,
    transcripts and summaries). A meeting whose bot is in it right now is kept; the meetings
    domain finalizes it and its retention cleanup erases it."""
    if not meeting_ids:
        return 0
    with database.begin() as conn:
        orphans = list(
            conn.execute(
                select(Meeting.id).where(
                    Meeting.id.in_(meeting_ids),
                    Meeting.id.not_in(select(MeetingParticipant.meeting_id).distinct()),
                )
            ).scalars()
        )
        bots = conn.execute(
            select(
                MeetingBot.meeting_id, MeetingBot.bot_id, MeetingBot.state, MeetingBot.data_deleted_at
            ).where(MeetingBot.meeting_id.in_(orphans))
        ).all()
    client = attendee.client()
    kept: set[int] = set()
    for meeting_id, bot_id, state, data_deleted_at in bots:
        try:
            if state == "scheduled":
                client.delete_bot(bot_id)
            elif state in ("ended", "fatal_error") and data_deleted_at is None:
                client.delete_data(bot_id)
            elif state not in FINISHED_BOT_STATES:
                kept.add(meeting_id)
        except AttendeeError as exc:
            if exc.status != 404:  # 404: Attendee has nothing left of it
                log.warning(
                    f"meeting {meeting_id}: bot {bot_id} not cleaned at Attendee ({exc}); meeting kept"
                )
                kept.add(meeting_id)
    if kept:
        log.info(f"kept {len(kept)} meetings whose bot is still active at Attendee: {sorted(kept)}")
    removable = [meeting_id for meeting_id in orphans if meeting_id not in kept]
    with database.begin() as conn:
        return conn.execute(delete(Meeting).where(Meeting.id.in_(removable))).rowcount if removable else 0


def forget_partition(instance: dg.DagsterInstance, asset_keys: list[dg.AssetKey], user_id: str) -> str:
    """Wipe the user's partitions' history on every asset and remove their `users` partition."""
    events = wipe_partition_history(instance, asset_keys, user_id)
    instance.delete_dynamic_partition(users.name, user_id)
    return f"partition removed, {events} asset events wiped"


def wipe_partition_history(
    instance: dg.DagsterInstance, asset_keys: list[dg.AssetKey], partition: str
) -> int:
    """Delete ``partition``'s asset events (materializations, observations, planned events) of
    ``asset_keys`` from the event log's index; how many.

    Dagster 1.13's `wipe_asset_partitions` raises NotImplementedError on its SQL storages (SQLite
    and PostgreSQL), so this does what it would: delete the events and their tags, then drop each
    asset's cached partition status so Dagster rebuilds it from what is left. The runs' own logs
    (SQLite keeps a copy per run) go with the runs when run housekeeping deletes them.
    """
    storage = instance.event_log_storage
    if not isinstance(storage, SqlEventLogStorage):
        for key in asset_keys:
            instance.wipe_asset_partitions(key, [partition])
        return 0
    keys = [key.to_string() for key in asset_keys]
    events = SqlEventLogStorageTable
    with storage.index_connection() as conn:
        ids = [
            row[0]
            for row in conn.execute(
                select(events.c.id).where(events.c.asset_key.in_(keys), events.c.partition == partition)
            )
        ]
        for chunk in (ids[i : i + 1000] for i in range(0, len(ids), 1000)):
            conn.execute(AssetEventTagsTable.delete().where(AssetEventTagsTable.c.event_id.in_(chunk)))
            conn.execute(events.delete().where(events.c.id.in_(chunk)))
    for key in asset_keys:
        storage.wipe_asset_cached_status(key)
    return len(ids)


# -- Dagster -------------------------------------------------------------------------------------


@dg.op(
    pool="auth",
    description="Revoke the grants of users who disconnected, were deleted, or never re-consented.",
)
def revoke_and_offboard(
    context: dg.OpExecutionContext,
    google: GoogleResource,
    database: DatabaseResource,
    attendee: AttendeeResource,
) -> Iterator[dg.Output[int]]:
    now = datetime.now(UTC)
    with database.begin() as conn:
        todo = candidates(conn, now)
    # Every asset the instance has history of (the run of this op knows no asset definitions).
    asset_keys = sorted(context.instance.get_asset_keys(), key=lambda key: key.to_user_string())
    done: dict[str, str] = {}
    failures: dict[str, str] = {}
    purged_rows = meetings_removed = 0
    for candidate in todo:
        try:
            outcome = revoke_grant(context.log, google, database, candidate.user_id, candidate.why)
            if candidate.action == Offboarding.PURGE:
                with database.begin() as conn:
                    deleted, meeting_ids = purge_user_rows(conn, candidate.user_id)
                purged_rows += sum(deleted.values())
                removed = remove_orphan_meetings(context.log, database, attendee, meeting_ids)
                meetings_removed += removed
                partition = forget_partition(context.instance, asset_keys, candidate.user_id)
                outcome += f"; purged {sum(deleted.values())} rows ({', '.join(sorted(deleted))}), "
                outcome += f"{removed} meetings nobody else attends; {partition}"
            done[candidate.user_id] = outcome
            context.log.info(f"user {candidate.user_id}: {outcome}")
        except Exception as exc:  # one user's failure never stops the others
            failures[candidate.user_id] = f"{type(exc).__name__}: {str(exc)[:300]}"
            context.log.warning(
                f"user {candidate.user_id}: offboarding failed: {failures[candidate.user_id]}"
            )
    metadata = {
        "revoked": sum(1 for c in todo if c.user_id in done and c.action == Offboarding.REVOKE),
        "purged": sum(1 for c in todo if c.user_id in done and c.action == Offboarding.PURGE),
        "rows_purged": purged_rows,
        "meetings_removed": meetings_removed,
        "failed": len(failures),
        "users": dg.MetadataValue.json({**done, **{u: f"failed: {e}" for u, e in failures.items()}}),
    }
    if failures:
        raise dg.Failure(
            description=f"offboarding failed for {len(failures)} users: "
            + "; ".join(f"{u}: {e[:200]}" for u, e in sorted(failures.items())[:5]),
            metadata=metadata,
            allow_retries=False,
        )
    yield dg.Output(len(done), metadata=metadata)


@dg.job(
    executor_def=dg.in_process_executor,
    description="Revoke grants at Google and erase their tokens (disconnected, deleted, or waiting for "
    "re-consent too long); purge deleted users' rows and partitions.",
)
def revocation_job() -> None:
    revoke_and_offboard()


revocation_schedule = dg.ScheduleDefinition(
    name="revocation_schedule",
    cron_schedule="0 3 * * *",
    job=revocation_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Revocation and offboarding: grants of users who disconnected, were deleted or did not "
    "re-consent within the grace period are revoked at Google; deleted users are purged.",
)
