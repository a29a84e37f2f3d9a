"""Push channel upkeep, one way for every domain: the per-user asset body that opens and renews a
user's channels, and the job that stops the channels of users who left."""

from collections.abc import Callable, Collection, Iterator

import dagster as dg

from sunny_pipelines.db.grants import usable_users
from sunny_pipelines.db.locks import sync_lock
from sunny_pipelines.per_user import LOCK_WAIT_SECONDS, for_each_user, run_trigger
from sunny_pipelines.resources.channels import (
    ChannelResult,
    StopAtGoogle,
    record_expired,
    stop_departed_channels,
)
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleResource, GoogleSession
from sunny_pipelines.vocabulary import Trigger


def renew_user_channels(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    service: str,
    ensure: Callable[[str], ChannelResult],
) -> Iterator[dg.AssetMaterialization]:
    """``ensure`` each user's channels. A scheduled run materializes only the users whose
    channels changed; a backfill or first sync shows every user's state. Users without a usable
    grant (who left, or wait for re-consent) get no channel: a range also covers them."""
    scheduled = run_trigger(context.run.tags) == Trigger.SCHEDULE
    with database.begin() as conn:
        usable = usable_users(conn, context.partition_keys)

    def renew(user_id: str) -> dict[str, int] | None:
        if user_id not in usable:
            return None
        # Under the user's sync lock: a sync opening channels at the same time would open a
        # second channel on the same target.
        with sync_lock(database.engine, user_id, service, LOCK_WAIT_SECONDS):
            result = ensure(user_id)
        if scheduled and not (result.opened or result.stopped):
            return None
        return result.metadata()

    yield from for_each_user(context, list(context.partition_keys), renew)


def departed_channels_job(
    name: str,
    kinds: Collection[str],
    stopper: Callable[[GoogleSession], StopAtGoogle],
    pool: str,
    description: str,
) -> dg.JobDefinition:
    """A job stopping the channels of ``kinds`` of users who left or revoked access, and
    recording those that lapsed as expired."""

    @dg.op(name=f"stop_{name}", pool=pool, description=description)
    def stop_departed(
        context: dg.OpExecutionContext, google: GoogleResource, database: DatabaseResource
    ) -> Iterator[dg.Output[int]]:
        stopped = stop_departed_channels(context.log, google, database, kinds, stopper)
        expired = record_expired(database, kinds)
        context.log.info(f"{expired} channels had expired")
        yield dg.Output(stopped, metadata={"channels_stopped": stopped, "channels_expired": expired})

    @dg.job(name=name, executor_def=dg.in_process_executor, description=description)
    def departed() -> None:
        stop_departed()

    return departed
