"""Keeping the `users` partitions equal to the connected users."""

import time

import dagster as dg
from sqlalchemy import select

from sunny_pipelines.calendar.jobs import calendar_sync_job
from sunny_pipelines.db.models import GoogleConnection, User
from sunny_pipelines.partitions import range_run_requests, users
from sunny_pipelines.resources.database import DatabaseResource


def partition_changes(
    known: list[str], connected: list[str], present: set[str]
) -> tuple[list[str], list[str]]:
    """(users to add, users to remove).

    ``connected``: active users with a usable grant, in sign-up order; ``present``: users who
    still have an account and a grant that is not revoked (a user waiting for re-consent keeps
    their partition, so operators see why it fails).
    """
    known_set = set(known)
    to_add = [user_id for user_id in connected if user_id not in known_set]
    to_remove = [user_id for user_id in known if user_id not in present]
    return to_add, to_remove


@dg.sensor(
    jobs=[calendar_sync_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a `users` partition for each newly connected user and requests their first "
    "full sync; removes the partitions of users who left or revoked access.",
)
def connected_users_sensor(
    context: dg.SensorEvaluationContext, database: DatabaseResource
) -> dg.SensorResult | dg.SkipReason:
    with database.begin() as conn:
        rows = conn.execute(
            select(User.id, User.status, GoogleConnection.status)
            .join(GoogleConnection, GoogleConnection.user_id == User.id, isouter=True)
            .order_by(User.created_at, User.id)
        ).all()
    connected = [uid for uid, status, grant in rows if status == "active" and grant == "active"]
    present = {
        uid for uid, status, grant in rows if status == "active" and grant in ("active", "needs_reauth")
    }
    known = context.instance.get_dynamic_partitions(users.name)
    to_add, to_remove = partition_changes(known, connected, present)
    if not to_add and not to_remove:
        return dg.SkipReason(f"{len(known)} users, no change")
    context.log.info(f"adding {len(to_add)} users, removing {len(to_remove)}")
    requests: list[dg.DynamicPartitionsRequest] = []
    if to_add:
        requests.append(users.build_add_request(to_add))
    if to_remove:
        requests.append(users.build_delete_request(to_remove))
    # New partitions are appended in this order, so they form contiguous ranges.
    run_requests = range_run_requests(
        to_add,
        to_add,
        run_key_prefix=f"first-sync:{time.time_ns()}",
        trigger=None,
        job_name=calendar_sync_job.name,
    )
    return dg.SensorResult(run_requests=run_requests, dynamic_partitions_requests=requests)
