"""Keeping the `users` partitions equal to the connected users, and their first syncs."""

import time
from collections.abc import Sequence

import dagster as dg
from sqlalchemy import select

from sunny_pipelines.db.grants import grant_is_usable, user_is_present
from sunny_pipelines.db.models import GoogleConnection, User
from sunny_pipelines.partitions import Job, range_run_requests, users
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.vocabulary import Trigger


def partition_changes(
    known: list[str], connected: list[str], present: set[str]
) -> tuple[list[str], list[str]]:
    """(users to add, users to remove).

    ``connected``: users with a usable grant, in sign-up order; ``present``: users who still have
    an account and a grant that is usable or waiting for re-consent (a user waiting for
    re-consent keeps their partition, so operators see why it fails).
    """
    known_set = set(known)
    to_add = [user_id for user_id in connected if user_id not in known_set]
    to_remove = [user_id for user_id in known if user_id not in present]
    return to_add, to_remove


def build_connected_users_sensor(
    first_sync_jobs: Sequence[Job],
) -> dg.SensorDefinition:
    """The users sensor, requesting each domain's first-sync job for newly connected users."""
    jobs = list({job.name: job for job in first_sync_jobs}.values())

    @dg.sensor(
        jobs=jobs,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Adds a `users` partition for each newly connected user and requests their first "
        "full sync of every service; removes the partitions of users who left or revoked access.",
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
        connected = [uid for uid, status, grant in rows if grant_is_usable(status, grant)]
        present = {uid for uid, status, grant in rows if user_is_present(status, grant)}
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
        tick = time.time_ns()
        run_requests = [
            request
            for job in jobs
            for request in range_run_requests(
                to_add,
                to_add,
                run_key_prefix=f"first-sync:{job.name}:{tick}",
                trigger=Trigger.FIRST_SYNC,
                job_name=job.name,
            )
        ]
        return dg.SensorResult(run_requests=run_requests, dynamic_partitions_requests=requests)

    return connected_users_sensor
