from collections.abc import Iterator

import dagster as dg
from sqlalchemy import update

from sunny_pipelines.db.models import MeetingBot
from sunny_pipelines.meetings.assets import POOL, meeting_bots
from sunny_pipelines.meetings.bots import bots_to_poll, cleanup_completed_meetings, refresh_bot
from sunny_pipelines.per_user import failure_of
from sunny_pipelines.per_user.definitions import per_user_job
from sunny_pipelines.resources.attendee import AttendeeResource
from sunny_pipelines.resources.database import DatabaseResource

meeting_bots_job = per_user_job(
    "bot_scheduling", meeting_bots, "Decide a range of users' meetings and send, move or delete their bots."
)


@dg.op(pool=POOL)
def poll_attendee_bots(
    context: dg.OpExecutionContext, attendee: AttendeeResource, database: DatabaseResource
) -> Iterator[dg.Output[int]]:
    """The old `sync_all_attendees`: refresh every bot Attendee may still change, and store the
    transcripts that are ready. The backstop of the webhooks."""
    with database.begin() as conn:
        bot_ids = bots_to_poll(conn)
    client = attendee.client()
    failures: dict[str, str] = {}
    states: dict[str, int] = {}
    for bot_id in bot_ids:
        try:
            state = refresh_bot(database, client, bot_id)
        except Exception as exc:  # one bot's error must not stop the others
            failures[bot_id] = f"{type(exc).__name__}: {exc}"
            with database.begin() as conn:
                conn.execute(
                    update(MeetingBot)
                    .where(MeetingBot.bot_id == bot_id)
                    .values(last_error=failures[bot_id][:2000])
                )
            continue
        states[state] = states.get(state, 0) + 1
    context.log.info(f"refreshed {len(bot_ids) - len(failures)} bots, {len(failures)} failed: {states}")
    if failures:
        raise failure_of(failures, len(bot_ids))
    yield dg.Output(len(bot_ids), metadata={"bots_refreshed": len(bot_ids), "bots_by_state": states})


@dg.job(executor_def=dg.in_process_executor, description="Refresh the state of every live Attendee bot.")
def attendee_polling_job() -> None:
    poll_attendee_bots()


@dg.op(pool=POOL)
def finish_completed_meetings(
    context: dg.OpExecutionContext, attendee: AttendeeResource, database: DatabaseResource
) -> Iterator[dg.Output[int]]:
    """The old `cleanup_completed_meetings`."""
    counts = cleanup_completed_meetings(database, attendee.client())
    context.log.info(f"{counts}")
    yield dg.Output(counts["meetings_finalized"], metadata=counts)


@dg.job(
    executor_def=dg.in_process_executor,
    description="Finalize completed meetings; past the retention period delete bot data at "
    "Attendee and here.",
)
def meeting_cleanup_job() -> None:
    finish_completed_meetings()
