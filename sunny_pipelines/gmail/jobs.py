from sunny_pipelines.gmail.assets import POOL, emails, gmail_watches
from sunny_pipelines.gmail.watch import WATCH_KINDS, gmail_stopper
from sunny_pipelines.per_user.channels import departed_channels_job
from sunny_pipelines.per_user.definitions import per_user_job

email_sync_job = per_user_job(
    "email_sync", emails, "Sync Gmail for a range of users and process their pending emails."
)

gmail_watch_job = per_user_job(
    "gmail_watch", gmail_watches, "Open and renew the Gmail push watch of a range of users."
)

departed_gmail_watches_job = departed_channels_job(
    "departed_gmail_watches_job",
    WATCH_KINDS,
    gmail_stopper,
    POOL,
    "Stop the Gmail watches of users who left or revoked access.",
)
