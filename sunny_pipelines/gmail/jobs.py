from collections.abc import Iterator

import dagster as dg

from sunny_pipelines.gmail.assets import POOL, emails, gmail_watches
from sunny_pipelines.gmail.watch import WATCH_KINDS, gmail_stopper
from sunny_pipelines.partitions import users
from sunny_pipelines.resources.channels import stop_departed_channels
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleResource

# In-process: a sync is I/O bound, and a subprocess per step would add seconds to every run.
email_sync_job = dg.define_asset_job(
    "email_sync",
    selection=[emails],
    partitions_def=users,
    executor_def=dg.in_process_executor,
    description="Sync Gmail for a range of users and process their pending emails.",
)

gmail_watch_job = dg.define_asset_job(
    "gmail_watch",
    selection=[gmail_watches],
    partitions_def=users,
    executor_def=dg.in_process_executor,
    description="Open and renew the Gmail push watch of a range of users.",
)


@dg.op(pool=POOL)
def stop_departed_gmail_watches(
    context: dg.OpExecutionContext, google: GoogleResource, database: DatabaseResource
) -> Iterator[dg.Output[int]]:
    """Stop the mailbox watches of users who left or revoked access."""
    stopped = stop_departed_channels(context.log, google, database, WATCH_KINDS, gmail_stopper)
    yield dg.Output(stopped, metadata={"watches_stopped": stopped})


@dg.job(executor_def=dg.in_process_executor, description="Stop Gmail watches of users who left.")
def departed_gmail_watches_job() -> None:
    stop_departed_gmail_watches()
