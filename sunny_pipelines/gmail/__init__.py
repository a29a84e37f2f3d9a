"""Gmail: the emails asset, push watch and email processing, and their beat entries."""

import dagster as dg

from sunny_pipelines.gmail.assets import GMAIL_SYNC, POOL, emails, gmail_watches
from sunny_pipelines.gmail.jobs import departed_gmail_watches_job, email_sync_job, gmail_watch_job
from sunny_pipelines.gmail.schedules import (
    departed_gmail_watches_schedule,
    email_processing_schedule,
    gmail_watch_renewal_schedule,
)
from sunny_pipelines.gmail.watch import RENEW_WITHIN, RENEWAL_EVERY, WATCH_KINDS
from sunny_pipelines.per_user import Domain, PushChannels

domain = Domain(
    name="gmail",
    definitions=dg.Definitions(
        assets=[emails, gmail_watches],
        jobs=[email_sync_job, gmail_watch_job, departed_gmail_watches_job],
        schedules=[email_processing_schedule, gmail_watch_renewal_schedule, departed_gmail_watches_schedule],
    ),
    sync=GMAIL_SYNC,
    inbox_job=email_sync_job,
    first_sync_job=email_sync_job,
    pool=POOL,
    push=PushChannels(
        asset=gmail_watches.key,
        service=GMAIL_SYNC.service,
        kinds=WATCH_KINDS,
        renew_within=RENEW_WITHIN,
        renewal_every=RENEWAL_EVERY,
        enabled=lambda google: bool(google.gmail_pubsub_topic),
    ),
)
