"""`replay_inbox`: an operator puts failed inbox rows (dead letters) back to pending from the
Dagster UI launchpad; the inbox sensor then requests runs for them."""

from datetime import UTC, datetime

import dagster as dg
from pydantic import Field, field_validator

from sunny_pipelines.inbox import rows as inbox_rows
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.vocabulary import Source


class ReplayInboxConfig(dg.Config):
    """Which failed rows to replay; every field left empty matches all."""

    source: str = Field(default="", description=f"one of {', '.join(s.value for s in Source)}; empty: all")
    user_id: str = Field(default="", description="a user id; empty: all users")
    received_since: str = Field(
        default="", description="ISO 8601 time, e.g. 2026-11-28T00:00:00Z; empty: any time"
    )

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value and value not in {s.value for s in Source}:
            raise ValueError(f"unknown source {value!r}; one of {', '.join(s.value for s in Source)}")
        return value

    @field_validator("received_since")
    @classmethod
    def _iso_time(cls, value: str) -> str:
        if value:
            parse_since(value)
        return value


def parse_since(value: str) -> datetime:
    """An ISO 8601 time; a time without an offset is UTC."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"received_since {value!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# Pool "sync": the old queue of work over every user (sunny_pipelines/pools.py).
@dg.op(pool="sync", description="Put failed webhook_inbox rows matching the config back to pending.")
def replay_failed_inbox_rows(
    context: dg.OpExecutionContext, config: ReplayInboxConfig, database: DatabaseResource
) -> dg.Output[int]:
    with database.begin() as conn:
        replayed = inbox_rows.replay_failed(
            conn,
            run_id=context.run_id,
            source=config.source or None,
            user_id=config.user_id or None,
            received_since=parse_since(config.received_since) if config.received_since else None,
        )
    context.log.info(
        f"{len(replayed)} failed rows back to pending"
        + (f" (ids {replayed[0]}..{replayed[-1]})" if replayed else ": none matched")
    )
    return dg.Output(
        len(replayed),
        metadata={"rows_replayed": len(replayed), "row_ids": dg.MetadataValue.json(replayed[:1000])},
    )


@dg.job(
    executor_def=dg.in_process_executor,
    description="Replay dead letters: failed webhook_inbox rows (by source, user, received since) go "
    "back to pending with fresh attempts; the inbox sensor requests runs for them.",
)
def replay_inbox() -> None:
    replay_failed_inbox_rows()
